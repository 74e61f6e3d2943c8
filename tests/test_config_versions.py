"""Config versions: checkpoints record the schema they were written with; older ones are upgraded on load;
renamed options in builders and overrides fail with the new name."""

from __future__ import annotations

import pytest
import torch

from demopose.engine.checkpoint import (
    CONFIG_VERSION,
    load_checkpoint,
    load_model,
    save_checkpoint,
    strip_checkpoint,
    upgrade_config,
)
from demopose.engine.config import apply_overrides, load_config
from demopose.models import build_model
from demopose.models.cleanpose import LEGACY_ARGS, upgrade_args_v1
from demopose.models.demopose import upgrade_args_v3

V1_ARGS = {"causal": True, "distill": False, "dict_size": 8, "select_num": 2, "fd_self_blocks": 1,
           "fd_cross_blocks": 2, "dict_update": "momentum", "dict_momentum": 0.9, "dict_enqueue": "input",
           "dict_init": None, "teacher": "tiny", "teacher_checkpoint": None, "teacher_dim": 32,
           "teacher_cache": True, "loss": {"kd": 0.5, "pose": 1.0}, "rgb_encoder": "cnn"}


def test_version_1_cleanpose_args_are_nested():
    out = upgrade_args_v1(V1_ARGS)
    assert out["causal"] == {"enabled": True, "dict_size": 8, "select_num": 2, "self_blocks": 1, "cross_blocks": 2,
                             "update": "momentum", "momentum": 0.9, "enqueue": "input", "dict_init": None}
    assert out["distill"] == {"enabled": False, "teacher": "tiny", "teacher_checkpoint": None, "teacher_dim": 32,
                              "cache": True, "kd_weight": 0.5}
    assert out["loss"] == {"pose": 1.0} and out["rgb_encoder"] == "cnn"
    assert not set(out) & (set(LEGACY_ARGS) - {"causal", "distill"})
    # every version-1 network had BatchNorm in every MLP; other keys a version-1 file did not store stay unset
    # (the preset's defaults apply, as they did then)
    assert upgrade_args_v1({"rgb_encoder": "cnn"}) == {"rgb_encoder": "cnn", "mlp_layout": "batchnorm"}
    assert upgrade_args_v1({"loss": {"kd": 0.1}}) == {"distill": {"kd_weight": 0.1}, "mlp_layout": "batchnorm"}


def test_version_3_demopose_fused_raw_rgb():
    assert upgrade_args_v3({"fusion": "add"}) == {"fusion": "add", "rgb_norm": "none"}
    assert upgrade_args_v3({"rgb_norm": "layernorm"}) == {"rgb_norm": "layernorm"}
    for version in (1, 2, 3):  # the chain reaches version 4 from each
        up = upgrade_config({"model": {"name": "demopose_small", "args": {"fusion": "concat"}}}, version)
        assert up["model"]["args"] == {"fusion": "concat", "rgb_norm": "none"}
    model = build_model("demopose_small", **up["model"]["args"])
    assert model.pose.fusion.rgb_norm is None
    assert build_model("demopose_small").pose.fusion.rgb_norm is not None  # today's default: layernorm


def test_version_4_tested_on_its_val_subset():
    """A version-4 run config has no data.test_subset: `demopose test` scored its val_subset, which it keeps."""
    old = {"model": {"name": "gpv_small", "args": {}}, "data": {"val_subset": "real_test", "n_points": 128}}
    up = upgrade_config(old, 4)
    assert up["data"] == {"val_subset": "real_test", "test_subset": "real_test", "n_points": 128}
    both = {"data": {"val_subset": "real_val", "test_subset": "real_test"}}
    assert upgrade_config(both, 4) == both  # a key already there is kept
    assert CONFIG_VERSION == 5
    # today's presets: validation on a split of its own, testing on the test split
    cfg = load_config("gpv_synth_small")
    assert (cfg.data.val_subset, cfg.data.test_subset) == ("real_val", "real_test")
    real = load_config("gpv_real275")  # REAL275's published practice: val = test
    assert real.data.val_subset == real.data.test_subset == "real_test"


def test_upgrade_config_touches_only_the_families_that_changed():
    cfg = {"model": {"name": "cleanpose_small", "args": {"causal": False}}, "train": {"seed": 3}}
    up = upgrade_config(cfg, 1)
    assert up["model"]["args"] == {"causal": {"enabled": False}, "mlp_layout": "batchnorm"}
    assert up["train"] == {"seed": 3}
    assert cfg["model"]["args"] == {"causal": False}  # a copy
    gpv = {"model": {"name": "gpv_small", "args": {"head_dropout": 0.1}}}
    assert upgrade_config(gpv, 1) == gpv
    assert upgrade_config(up, CONFIG_VERSION) == up
    with pytest.raises(ValueError, match="newer than this demopose"):
        upgrade_config(cfg, CONFIG_VERSION + 1)


def _v1_checkpoint(path, args):
    """A checkpoint as written before config versions existed (no ``config_version``, flat CleanPose args)."""
    model = build_model("cleanpose_small", **upgrade_args_v1(args))
    config = {"model": {"name": "cleanpose_small", "args": args}}
    save_checkpoint(path, {"model": model.state_dict(), "config": config, "step": 5})
    return model


def test_version_1_checkpoint_loads_tests_and_strips_as_today(tmp_path):
    torch.manual_seed(0)
    model = _v1_checkpoint(tmp_path / "v1.pt", {"causal": True, "distill": False, "dict_size": 8, "teacher_dim": 64})
    state = load_checkpoint(tmp_path / "v1.pt")
    assert state["config_version"] == CONFIG_VERSION
    assert state["config"]["model"]["args"]["causal"] == {"enabled": True, "dict_size": 8}
    loaded = load_model(tmp_path / "v1.pt")
    assert loaded.front_door.dictionary.size == 8 and loaded.distill is None
    assert loaded.config.mlp_layout == "batchnorm"  # version 1 had no other layout
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    strip_checkpoint(tmp_path / "v1.pt", tmp_path / "stripped.pt")
    raw = torch.load(tmp_path / "stripped.pt", weights_only=True)
    assert raw["config_version"] == CONFIG_VERSION and raw["config"]["model"]["args"]["causal"]["enabled"] is True
    newer = {**raw, "config_version": CONFIG_VERSION + 1}
    torch.save(newer, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match=r"newer\.pt.*newer than this demopose"):
        load_checkpoint(tmp_path / "newer.pt")


@pytest.mark.parametrize(("args", "new"), [
    ({"fd_self_blocks": 1}, "causal.self_blocks"),
    ({"teacher_cache": True}, "distill.cache"),
    ({"causal": False}, "causal.enabled"),
    ({"loss": {"kd": 0.1}}, "distill.kd_weight"),
])
def test_builder_refuses_the_flat_keys_naming_their_new_place(args, new):
    with pytest.raises(ValueError, match=rf"nested since config version 2.*-> {new}"):
        build_model("cleanpose_small", **args)


def test_builder_merges_nested_options_over_the_preset():
    m = build_model("cleanpose_small", causal={"select_num": 3}, distill={"enabled": False})
    cfg = m.config
    assert cfg.causal.select_num == 3 and cfg.causal.dict_size == 16 and cfg.causal.enabled  # rest: the preset's
    assert m.distill is None and cfg.distill.teacher == "tiny"
    with pytest.raises(ValueError, match=r"causal: unknown option\(s\) \['dim'\]"):
        build_model("cleanpose_small", causal={"dim": 8})
    assert build_model("agpose_small").front_door is None
    assert build_model("agpose_small", causal={"enabled": True}).front_door is not None


def test_overrides_name_the_new_form():
    cfg = load_config("cleanpose_synth_small")
    group = r"model\.args\.causal is a group of options.*model\.args\.causal\.enabled"
    with pytest.raises(ValueError, match=group + "=false"):
        apply_overrides(cfg, ["model.args.causal=false"])
    with pytest.raises(ValueError, match=r"unknown config key 'model\.args\.fd_self_blocks' "
                                         r"\(renamed: model\.args\.causal\.self_blocks\)"):
        apply_overrides(cfg, ["model.args.fd_self_blocks=1"])
    apply_overrides(cfg, ["model.args.causal.enabled=false", "model.args.distill.enabled=false"])
    assert cfg.model.args.causal.enabled is False and cfg.model.args.distill.enabled is False
    dm = load_config("demopose_synth_small")  # the same form for DeMo-Pose
    with pytest.raises(ValueError, match=group):
        apply_overrides(dm, ["model.args.causal=true"])
