"""Engine: configs, sampler, optimisers, exact resume after a kill, torchrun/DDP parity."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from demopose.engine import HookBase, ResumableSampler, apply_overrides, load_config
from demopose.engine.checkpoint import load_checkpoint
from demopose.engine.optim import lr_factor_fn

sys.path.insert(0, str(Path(__file__).parent))
from toy_training import build  # noqa: E402


def _losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss/total"] for line in lines]


def test_config_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("model:\n  name: gpv\n  width: 128\ntrain:\n  lr: 0.0001\n  steps: 10\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\nmodel:\n  width: 64\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.lr=0.001", "train.steps=20"])
    assert cfg.model.name == "gpv" and cfg.model.width == 64
    assert cfg.train.lr == 0.001 and cfg.train.steps == 20
    apply_overrides(cfg, ["train.lr=1"])  # int into a float key is fine
    assert isinstance(cfg.train.lr, float)
    with pytest.raises(ValueError, match="unknown config key 'train.lrr'.*keys under train: lr, steps"):
        apply_overrides(cfg, ["train.lrr=0.1"])
    with pytest.raises(ValueError, match="train.steps expects a int"):
        apply_overrides(cfg, ["train.steps=abc"])
    with pytest.raises(ValueError, match="must look like key.sub=value"):
        apply_overrides(cfg, ["train.steps"])
    (tmp_path / "loop.yaml").write_text("_base_: loop.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "loop.yaml")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_sampler_resume_and_sharding():
    s = ResumableSampler(10, seed=3, rank=0, world_size=1, drop_last_to=4)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == 8 and len({i for i, _ in full}) == 8
    s.set_epoch(2, start=5)
    assert list(s) == full[5:]
    shards = []
    for r in range(2):
        sr = ResumableSampler(10, seed=3, rank=r, world_size=2, drop_last_to=4)
        sr.set_epoch(2)
        shards.append(list(sr))
    assert sorted(shards[0] + shards[1]) == sorted(full)
    s.set_epoch(3)
    assert list(s) != full


def test_flat_and_anneal_schedule():
    f = lr_factor_fn("flat_and_anneal", total_steps=100, warmup_steps=10, warmup_factor=0.001)
    assert f(0) == pytest.approx(0.001)
    assert f(10) == pytest.approx(1.0) and f(71) == pytest.approx(1.0)
    assert f(72) == pytest.approx(1.0) and f(86) == pytest.approx(0.5, abs=0.02) and f(100) == pytest.approx(0)
    c = lr_factor_fn("cyclic", 100, cycle_steps=10, min_factor=0.1, max_factor=1.0)
    assert c(0) == pytest.approx(0.1) and c(10) == pytest.approx(1.0) and c(20) == pytest.approx(0.1)


class _Kill(HookBase):
    def __init__(self, at: int) -> None:
        self.at = at

    def after_step(self) -> None:
        if self.trainer.step == self.at:
            raise KeyboardInterrupt


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    ref = build(tmp_path / "ref", max_steps=14, dropout=0.2)
    ref.train()
    w_ref = {k: v.clone() for k, v in ref.raw_model.state_dict().items()}

    run = tmp_path / "run"
    t1 = build(run, max_steps=14, dropout=0.2)
    t1.hooks.insert(1, _Kill(10))
    t1.hooks[1].attach(t1)
    with pytest.raises(KeyboardInterrupt):
        t1.train()
    assert load_checkpoint(run / "last.pt")["step"] == 8  # checkpoint_every=4
    t2 = build(run, max_steps=14, dropout=0.2)
    assert t2.resume()
    assert t2.step == 8
    t2.train()
    for k, v in t2.raw_model.state_dict().items():
        torch.testing.assert_close(v, w_ref[k], rtol=0, atol=1e-6)
    assert load_checkpoint(run / "last.pt")["step"] == 14
    assert _losses(run) == pytest.approx(_losses(tmp_path / "ref"), abs=1e-6)


def test_training_reduces_loss(tmp_path):
    t = build(tmp_path, max_steps=100, optimizer="adam")
    t.train()
    losses = _losses(tmp_path)
    assert losses[-1] < 0.2 * losses[0]


def test_torchrun_two_gloo_processes_match_single_process(tmp_path):
    script = Path(__file__).parent / "toy_training.py"
    single = tmp_path / "single"
    subprocess.run([sys.executable, str(script), str(single), "12"], check=True, env={**os.environ})
    ddp = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(ddp), "12"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _losses(ddp) == pytest.approx(_losses(single), rel=1e-4, abs=1e-6)
    w1 = load_checkpoint(single / "last.pt")["model"]
    w2 = load_checkpoint(ddp / "last.pt")["model"]
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=0, atol=1e-5)
