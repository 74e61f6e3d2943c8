"""Unknown keys inside YAML config files are refused with the file and the key; data sizes come from the model."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from demopose.engine.build import build_model_from_config, data_image_size
from demopose.engine.checkpoint import upgrade_config
from demopose.engine.config import OPTIONAL_KEYS, apply_overrides, list_packaged_configs, load_config


@pytest.mark.parametrize("name", list_packaged_configs())
def test_packaged_configs_hold_known_keys_only(name):
    load_config(name)


def test_a_typo_in_a_child_file_names_the_file_and_the_key(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("_base_: gpv_synth_small\ntrain:\n  max_step: 10\n")
    with pytest.raises(ValueError, match=rf"{f.name}: unknown config key 'train\.max_step': not in its _base_ "
                                         r"gpv_synth_small; keys under train: .*max_steps"):
        load_config(f)
    f.write_text("_base_: gpv_synth_small\ntrian: {max_steps: 10}\n")
    with pytest.raises(ValueError, match=rf"{f.name}: unknown config key 'trian'.*keys under the top level: data"):
        load_config(f)
    child = tmp_path / "child.yaml"  # a key two levels down, through a chain of user files
    child.write_text("_base_: mine.yaml\neval: {seed: 1, iuo: nocs}\n")
    f.write_text("_base_: gpv_synth_small\n")
    with pytest.raises(ValueError, match=rf"{child.name}: unknown config key 'eval\.iuo'"):
        load_config(child)


def test_optional_keys_and_open_groups_may_be_added(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("_base_: gpv_synth_small\ndata: {sample: instance, mesh_cache: /tmp/x}\n"
                 "model: {args: {backbone: hs}}\ntrain: {optimizer: {betas: [0.9, 0.99]}}\n")
    cfg = load_config(f)
    assert cfg.data.sample == "instance" and cfg.model.args.backbone == "hs" and cfg.train.optimizer.betas[1] == 0.99
    assert "data.sample" in OPTIONAL_KEYS
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['backbon'\]; GPVConfig expects"):  # the builder
        build_model_from_config(OmegaConf.merge(cfg, {"model": {"args": {"backbon": "hs"}}}))


def test_data_input_size_is_read_from_the_model(tmp_path):
    cfg = load_config("mono_synth_small", ["model.args.input_size=[96,96]"])
    assert "input_size" not in cfg.data
    model = build_model_from_config(cfg)
    assert data_image_size(cfg, model) == (96, 96) == tuple(model.image_size)
    with pytest.raises(ValueError, match=r"unknown config key 'data\.input_size' \(removed: .*model\.args"):
        apply_overrides(cfg, ["data.input_size=[96,96]"])
    f = tmp_path / "old.yaml"
    f.write_text("_base_: mono_synth_small\ndata: {input_size: [320, 320]}\n")
    with pytest.raises(ValueError, match=rf"{f.name}: unknown config key 'data\.input_size' \(removed"):
        load_config(f)
    old = OmegaConf.merge(cfg, {"data": {"input_size": [96, 96]}})  # a saved run config (no _base_) from before
    assert data_image_size(old, model) == (96, 96)
    with pytest.raises(ValueError, match=r"data\.input_size \[128, 128\] differs from the model's input size "
                                         r"\[96, 96\]"):
        data_image_size(OmegaConf.merge(cfg, {"data": {"input_size": [128, 128]}}), model)
    with pytest.raises(ValueError, match=r"data\.sample=frame: whole-frame detection samples train a detector"):
        data_image_size(cfg, build_model_from_config(load_config("gpv_synth_small")))


def test_version_2_configs_lose_data_input_size():
    cfg = {"model": {"name": "mono_small", "args": {"input_size": [320, 320]}},
           "data": {"input_size": [320, 320], "n_points": 1028}}
    up = upgrade_config(cfg, 2)
    assert up["data"] == {"n_points": 1028} and up["model"] == cfg["model"]
    assert cfg["data"]["input_size"] == [320, 320]  # a copy
    assert upgrade_config(cfg, 1)["data"] == {"n_points": 1028}


def test_a_model_argument_the_file_leaves_out_can_be_overridden_and_the_builder_checks_it():
    cfg = load_config("cleanpose_synth_small", ["model.args.online_aug=false", "model.args.causal.heads=2"])
    assert cfg.model.args.online_aug is False and cfg.model.args.causal.heads == 2
    assert cfg.model.args.causal.dict_size == 16  # the file's other options stay
    typo = load_config("gpv_synth_small", ["model.args.head_dropoutt=0.1"])
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['head_dropoutt'\]"):
        build_model_from_config(typo)
    with pytest.raises(ValueError, match="unknown config key 'data.n_pointz'"):  # outside model.args: refused at once
        load_config("gpv_synth_small", ["data.n_pointz=3"])
