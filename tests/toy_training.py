"""A tiny regression task for engine tests (also run under torchrun by test_engine_ddp.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from demopose.engine import Trainer, TrainerConfig, build_optimizer, build_scheduler, default_hooks, dist


class ToyDataset(torch.utils.data.Dataset):
    """y = W x with per-sample noise drawn from the sample seed (an "augmentation")."""

    def __init__(self, n: int = 48) -> None:
        g = np.random.default_rng(123)
        self.x = g.normal(size=(n, 4)).astype(np.float32)
        self.w = g.normal(size=(4, 2)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key):
        index, seed = key
        noise = np.random.default_rng(seed).normal(scale=0.1, size=4).astype(np.float32)
        x = self.x[index] + noise
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(x @ self.w)}


class ToyModel(torch.nn.Module):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(dropout),
                                       torch.nn.Linear(16, 2))

    def forward(self, batch):
        return self.net(batch["x"])

    def loss(self, pred, batch):
        return {"mse": ((pred - batch["y"]) ** 2).mean()}


def build(run_dir: Path, max_steps: int, dropout: float = 0.0, checkpoint_every: int = 4,
          batch_size: int = 8, hooks=None, optimizer: str = "ranger") -> Trainer:
    torch.manual_seed(0)
    model = ToyModel(dropout)
    opt = build_optimizer(optimizer, model.parameters(), lr=1e-2)
    sched = build_scheduler(opt, "flat_and_anneal", total_steps=max_steps, warmup_steps=3)
    cfg = TrainerConfig(max_steps=max_steps, batch_size=batch_size, seed=5)
    hooks = default_hooks(checkpoint_every, log_every=1, progress=False) if hooks is None else hooks
    return Trainer(model, opt, sched, ToyDataset(), torch.utils.data.default_collate, cfg, run_dir, hooks)


if __name__ == "__main__":  # torchrun entry: python toy_training.py RUN_DIR STEPS
    dist.init_distributed("cpu")
    trainer = build(Path(sys.argv[1]), int(sys.argv[2]))
    trainer.train()
    dist.cleanup()
