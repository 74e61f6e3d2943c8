"""Distillation teacher: per-instance feature cache (instance_index, teacher fingerprint) and the offline
teacher pretrained on the synthetic meshes (`demopose pretrain-teacher`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from demopose.cli import main
from demopose.data.instances import InstanceDataset, collate_instances
from demopose.engine.build import build_frames
from demopose.engine.config import load_config
from demopose.engine.teacher_pretrain import MeshPool, PretrainConfig, nt_xent, pretrain_teacher, sample_views
from demopose.engine.trainer import Trainer, TrainerConfig
from demopose.models import build_model
from demopose.models.distill import build_teacher
from demopose.models.point_teacher import load_teacher, save_teacher

SMALL = dict(dim=32, num_kpts=8, pn2_npoints=(32, 8), pn2_radii=((0.02, 0.04), (0.05, 0.1)),
             pn2_nsamples=((8, 8), (8, 8)), pn2_sa_mlps=(((8,), (8,)), ((16,), (16,))), pn2_fp_mlps=((16,), (16,)),
             ffn=32, pe_hidden=(16, 32), head_hidden=32, nocs_bins=8, gafa_k=(4,), iakd_blocks=1, rgb_size=32,
             causal={"dict_size": 4, "select_num": 2}, distill={"teacher_dim": 32, "cache": True})


def test_teacher_called_once_per_instance_across_two_epochs(tiny_synth, tmp_path):
    cfg = load_config("cleanpose_synth_small", [f"data.root={tiny_synth(4, 2)}"])
    ds = InstanceDataset(build_frames(cfg, "real_train"), n_points=64, train=True, rgb_size=32)
    assert int(ds[(3, 7)]["instance_index"]) == 3
    torch.manual_seed(0)
    model = build_model("cleanpose_small", **SMALL)
    seen: list[int] = []
    model.register_forward_pre_hook(lambda m, args: seen.extend(args[0]["instance_index"].tolist()))
    per_epoch = len(ds) // 2
    tr = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3), None, ds, collate_instances,
                 TrainerConfig(max_steps=2 * per_epoch, batch_size=2, grad_clip=None), tmp_path)
    tr.train()
    distinct = set(seen)
    assert len(seen) == 4 * per_epoch and len(distinct) < len(seen)  # two epochs: instances come back
    assert model.distill.teacher_calls == len(distinct)  # ... and the teacher encoded each only once
    assert set(model.distill.cache) == distinct
    # new teacher weights invalidate the cache (fingerprint), the same weights reloaded do not
    fp = model.distill.teacher.fingerprint()
    model.distill.teacher.load_state_dict({k: v.clone() for k, v in model.distill.teacher.state_dict().items()})
    assert model.distill.teacher.fingerprint() == fp
    b = collate_instances([ds[i] for i in sorted(distinct)[:2]])
    model.train()
    model(b)
    assert model.distill.teacher_calls == len(distinct)
    with torch.no_grad():
        next(model.distill.teacher.parameters()).add_(0.1)
    assert model.distill.teacher.fingerprint() != fp
    model(b)
    assert model.distill.teacher_calls == len(distinct) + 2
    assert set(model.distill.cache) == set(b["instance_index"].tolist())


def test_views_are_unit_sphere_partial_and_rotated():
    pool = MeshPool.synthetic(1, 512, seed=0)
    assert len(pool) == 6 and pool.labels.tolist() == [0, 1, 2, 3, 4, 5]
    g = torch.Generator().manual_seed(0)
    v = sample_views(pool.points, pool.normals, 128, g, p_partial=1.0, noise=0.0)
    assert v.shape == (6, 128, 3)
    torch.testing.assert_close(v.mean(1), torch.zeros(6, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(v.norm(dim=-1).amax(1), torch.ones(6))
    # a partial view only holds points whose normal faces the viewpoint: on a bottle (a closed surface)
    # that is about half of it, so the view's spread is smaller than the full cloud's along some axis
    full = sample_views(pool.points, pool.normals, 128, torch.Generator().manual_seed(0), p_partial=0.0, noise=0.0)
    assert not torch.allclose(v, full)
    before = pool.names[:]
    pool.refresh(3)
    assert sum(a != b for a, b in zip(before, pool.names)) == 3


def test_nt_xent_prefers_matching_pairs():
    z = torch.randn(8, 16)
    assert nt_xent(z, z) < nt_xent(z, torch.randn(8, 16))


def test_pretraining_learns_and_the_checkpoint_loads_as_teacher(tmp_path):
    # one mesh per category, whole clouds (random rotations only): a few seconds of CPU
    cfg = PretrainConfig(arch="tiny", steps=60, batch_size=12, n_points=64, dense_points=256, pool_per_category=1,
                         refresh_per_step=0, val_meshes_per_category=1, lr=2e-3, p_partial=0.0, noise=0.0,
                         scale_jitter=(1.0, 1.0), seed=0)
    enc, rec = pretrain_teacher(cfg, progress=False, log_every=0)
    assert len(rec["loss"]) == 60
    first, last = np.mean(rec["loss"][:10]), np.mean(rec["loss"][-10:])
    assert last < first - 0.3, (first, last)  # measured drops 0.5-1.1 over seeds 0-3
    assert np.mean(rec["loss_cls"][-10:]) < np.mean(rec["loss_cls"][:10]) - 0.2
    path = tmp_path / "teacher.pt"
    save_teacher(path, enc, "tiny", record=rec)
    teacher = build_teacher("pretrained", path, dim=64)
    x = torch.rand(3, 128, 3)
    torch.testing.assert_close(teacher(x), enc(x))
    enc2, meta = load_teacher(path)
    assert meta["record"]["loss"] == rec["loss"]
    # it is the teacher of the small CleanPose
    m = build_model("cleanpose_small", distill={"teacher": "pretrained", "teacher_checkpoint": str(path)})
    assert m.distill.teacher.fingerprint() == build_teacher("pretrained", path, dim=64).fingerprint()
    with pytest.raises(ValueError, match="teacher_dim"):
        build_teacher("pretrained", path, dim=768)
    with pytest.raises(ValueError, match="needs teacher_checkpoint"):
        build_teacher("pretrained", None, dim=64)
    torch.save({"state_dict": {}}, tmp_path / "ulip.pt")
    with pytest.raises(ValueError, match="not a demopose teacher"):
        load_teacher(tmp_path / "ulip.pt")


def test_pretrain_teacher_command(tmp_path, capsys):
    out = tmp_path / "t.pt"
    assert main(["pretrain-teacher", "--out", str(out), "--steps", "2", "--batch-size", "4", "--points", "64",
                 "--pool", "1", "--no-progress"]) == 0
    enc, meta = load_teacher(out)
    assert enc.out_channels == 64 and meta["command"].startswith("demopose pretrain-teacher --out")
    assert "held-out meshes" in capsys.readouterr().out
    assert main(["pretrain-teacher", "--out", str(out), "--meshes", str(tmp_path / "nope"), "--steps", "1"]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_teacher_file_is_portable(tmp_path, caplog):
    """``asset:NAME`` names the shipped teacher; another installation's absolute path to it falls back to this
    installation's copy (with a warning); any other path is kept as given."""
    from demopose.assets import asset_path
    from demopose.models.distill import resolve_teacher_file

    shipped = asset_path("teacher_synth_tiny.pt")
    assert resolve_teacher_file("asset:teacher_synth_tiny.pt") == shipped
    with caplog.at_level("WARNING"):
        assert resolve_teacher_file("/elsewhere/site-packages/demopose/assets/teacher_synth_tiny.pt") == shipped
    assert "does not exist" in caplog.text
    other = tmp_path / "my_teacher.pt"
    assert resolve_teacher_file(other) == other
    with pytest.raises(FileNotFoundError, match="not shipped"):
        resolve_teacher_file("asset:nope.pt")
