"""Precise BatchNorm statistics (engine/precise_bn.py): known answers, frozen layers left alone, the hook leaves the
training stream unchanged, and a bf16-trained network whose fp32 inference it repairs."""

from __future__ import annotations

import pytest
import torch
from tests.toy_training import ToyDataset

from demopose.engine import Trainer, TrainerConfig, build_optimizer, build_scheduler, default_hooks
from demopose.engine.precise_bn import PreciseBNHook, trainable_batchnorms, update_bn_stats, wants_precise_bn


class BNNet(torch.nn.Module):
    def __init__(self, frozen_part: bool = False) -> None:
        super().__init__()
        self.frozen = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)) if frozen_part else None
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                       torch.nn.Linear(16, 2))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen is not None:
            self.frozen.train(False)  # as DeMo-Pose keeps its detector
        return self

    def forward(self, batch):
        x = batch["x"]
        if self.frozen is not None:
            x = self.frozen(x)
        return self.net(x)

    def loss(self, pred, batch):
        return {"mse": ((pred - batch["y"]) ** 2).mean()}


def test_known_answer_equal_weight_mean_of_batches():
    torch.manual_seed(0)
    model = BNNet()
    model.net[0].weight.data = torch.eye(16, 4)  # BN input = the first 4 input channels, zeros elsewhere
    model.net[0].bias.data.zero_()
    batches = [{"x": torch.randn(8, 4) * (k + 1) + k} for k in range(3)]
    n = update_bn_stats(model, batches)
    assert n == 1
    bn = model.net[1]
    xs = [b["x"] for b in batches]
    want_mean = torch.stack([x.mean(0) for x in xs]).mean(0)
    want_var = torch.stack([x.var(0, unbiased=True) for x in xs]).mean(0)
    torch.testing.assert_close(bn.running_mean[:4], want_mean)
    torch.testing.assert_close(bn.running_var[:4], want_var)
    assert bn.momentum == 0.1  # restored
    assert int(bn.num_batches_tracked) == 3


def test_mode_and_momentum_restored_and_empty_refused():
    model = BNNet().eval()
    model.net[1].momentum = 0.3
    update_bn_stats(model, [{"x": torch.randn(4, 4)}])
    assert not model.training and model.net[1].momentum == 0.3
    with pytest.raises(ValueError, match="no batches"):
        update_bn_stats(model, [])


def test_frozen_batchnorm_left_alone():
    model = BNNet(frozen_part=True)
    frozen_bn = model.frozen[1]
    frozen_bn.running_mean.fill_(3.0)
    assert trainable_batchnorms(model) == [model.net[1]]
    update_bn_stats(model, [{"x": torch.randn(8, 4)}])
    assert torch.all(frozen_bn.running_mean == 3.0)
    assert not wants_precise_bn("auto", "fp32", model)
    assert wants_precise_bn("auto", "bf16", model) and wants_precise_bn("always", "fp32", model)
    assert not wants_precise_bn("never", "bf16", model)
    assert not wants_precise_bn("always", "bf16", torch.nn.Linear(2, 2))  # nothing to recompute
    with pytest.raises(ValueError, match="train.precise_bn"):
        wants_precise_bn("sometimes", "bf16", model)


def _bn_run(tmp_path, name: str, with_hook: bool) -> Trainer:
    torch.manual_seed(0)
    model = BNNet()
    opt = build_optimizer("adam", model.parameters(), lr=1e-2)
    sched = build_scheduler(opt, "flat_and_anneal", total_steps=6, warmup_steps=1)
    hooks = default_hooks(0, log_every=1, progress=False)
    if with_hook:
        hooks.insert(0, PreciseBNHook(ToyDataset(), torch.utils.data.default_collate, batches=3, every=3))
    cfg = TrainerConfig(max_steps=6, batch_size=8, seed=5)
    trainer = Trainer(model, opt, sched, ToyDataset(), torch.utils.data.default_collate, cfg, tmp_path / name, hooks)
    trainer.train()
    return trainer


def test_hook_keeps_the_training_stream_and_sets_the_final_statistics(tmp_path):
    plain = _bn_run(tmp_path, "plain", with_hook=False)
    precise = _bn_run(tmp_path, "precise", with_hook=True)
    for (name, a), b in zip(plain.model.named_parameters(), precise.model.parameters()):
        torch.testing.assert_close(a, b, msg=f"{name}: the hook changed training")
    bn_plain, bn_precise = plain.model.net[1], precise.model.net[1]
    assert not torch.allclose(bn_plain.running_var, bn_precise.running_var)
    # the final statistics are exactly a recomputation over the hook's batches
    hook = precise.hooks[0]
    again = BNNet()
    again.load_state_dict(precise.model.state_dict())
    update_bn_stats(again, list(hook._batches(precise.step)))
    torch.testing.assert_close(again.net[1].running_mean, bn_precise.running_mean)
    torch.testing.assert_close(again.net[1].running_var, bn_precise.running_var)


def test_fp32_statistics_match_fp32_batch_statistics():
    """After recomputation on one batch, eval mode in fp32 reproduces train mode on that batch (to the biased /
    unbiased variance factor), whatever the precision the running statistics had been collected in."""
    torch.manual_seed(1)
    model = BNNet()
    x = {"x": torch.randn(256, 4) * 3 + 1}
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(20):
            model(x)
    update_bn_stats(model, [x])
    with torch.no_grad():
        train_out = model.train()(x)
        eval_out = model.eval()(x)
    torch.testing.assert_close(eval_out, train_out, atol=2e-2, rtol=1e-2)
