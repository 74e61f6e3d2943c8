"""The training loop: one process or many (``torchrun``), resumable to the exact step.

The model contract (STYLE.md §7.8): ``pred = model(batch)`` and ``losses = model.loss(pred, batch)``,
a dict of weighted scalar tensors whose sum is minimised. ``batch`` is whatever the dataset's
``collate_fn`` returns (a dict of tensors, moved to the device here).

Reproducibility: the data order and each sample's augmentation seed come from
:class:`~demopose.engine.sampler.ResumableSampler`; the global RNG (used by the model, e.g. random
pooling or dropout) is saved in every checkpoint and the DataLoader gets its own generator, so a run
killed and resumed ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from demopose._device import move_to_device
from demopose.engine import dist
from demopose.engine.checkpoint import (
    CONFIG_VERSION,
    capture_rng_state,
    find_resume_checkpoint,
    load_training_checkpoint,
    restore_rng_state,
    save_checkpoint,
    unwrap_model,
)
from demopose.engine.hooks import HookBase
from demopose.engine.precision import autocast
from demopose.engine.sampler import ResumableSampler

__all__ = ["Trainer", "TrainerConfig", "float32_outputs", "move_to_device", "seed_everything"]

log = logging.getLogger(__name__)


@dataclass
class TrainerConfig:
    """Loop settings.

    Attributes:
        max_steps: optimisation steps in the whole run.
        batch_size: *global* batch size (divided among ranks).
        num_workers: DataLoader worker processes per rank.
        grad_clip: max gradient norm (None: no clipping). GPV-Pose clips at 5.
        seed: base seed of the run (data order, augmentation, model init).
        shuffle: shuffle the training set each epoch.
        sync_bn: under several processes, BatchNorm statistics over the batches of all ranks
            (:func:`demopose.engine.dist.convert_sync_batchnorm`); no effect on one process.
        precision: ``fp32`` or ``bf16`` (the forward under autocast, :mod:`demopose.engine.precision`;
            resolve ``auto`` with :func:`~demopose.engine.precision.resolve_precision` first).
    """

    max_steps: int
    batch_size: int
    num_workers: int = 0
    grad_clip: float | None = 5.0
    seed: int = 0
    shuffle: bool = True
    sync_bn: bool = False
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"TrainerConfig.precision: expected 'fp32' or 'bf16' (resolve 'auto' first), "
                             f"got {self.precision!r}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def float32_outputs(value: Any) -> Any:
    """``value`` with every lower-precision floating tensor (autocast outputs) taken to float32, through nested
    dicts, lists, tuples and dataclasses (a model's prediction record): losses are computed in float32."""
    import dataclasses

    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() and value.dtype in (torch.bfloat16, torch.float16) \
            else value
    if isinstance(value, dict):
        return {k: float32_outputs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(float32_outputs(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: float32_outputs(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    return value


class Trainer:
    """Train ``model`` on ``dataset`` for ``cfg.max_steps`` steps.

    Args:
        model: a module with ``forward(batch)`` and ``loss(pred, batch) -> dict[str, Tensor]``.
        optimizer, scheduler: built on the model's parameters (scheduler stepped once per step).
        dataset: a map-style dataset whose ``__getitem__`` accepts ``(index, seed)`` pairs.
        collate_fn: batches samples.
        cfg: loop settings.
        run_dir: where checkpoints and logs go (created on rank 0).
        hooks: see :mod:`demopose.engine.hooks`.
        device: the device for this rank (from :func:`demopose.engine.dist.init_distributed`).
        config: the resolved run config (saved in every checkpoint), any picklable value.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None, dataset: Dataset,
                 collate_fn: Callable[[list[Any]], Any] | None, cfg: TrainerConfig, run_dir: str | Path,
                 hooks: Sequence[HookBase] = (), device: torch.device | None = None, config: Any = None) -> None:
        self.cfg = cfg
        self.device = device or torch.device("cpu")
        self.run_dir = Path(run_dir)
        self.world = dist.world_size()
        if cfg.batch_size % self.world:
            raise ValueError(f"trainer.batch_size={cfg.batch_size} must be divisible by the number of "
                             f"processes ({self.world})")
        self.local_batch = cfg.batch_size // self.world
        self.model = model.to(self.device)
        if self.world > 1:
            if cfg.sync_bn:
                self.model = dist.convert_sync_batchnorm(self.model)
            dist.share_dictionary_updates(self.model)  # front-door dictionaries: every rank's updates, everywhere
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.dataset, self.collate_fn = dataset, collate_fn
        self.sampler = ResumableSampler(len(dataset), seed=cfg.seed, shuffle=cfg.shuffle, rank=dist.rank(),
                                        world_size=self.world, drop_last_to=cfg.batch_size)
        self.steps_per_epoch = self.sampler.per_rank() // self.local_batch
        self.hooks = list(hooks)
        for h in self.hooks:
            h.attach(self)
        self.config = config
        self.step = 0
        self.records: dict[str, float] = {}

    @property
    def max_steps(self) -> int:
        return self.cfg.max_steps

    @property
    def raw_model(self) -> torch.nn.Module:
        return unwrap_model(self.model)

    # -- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "step": self.step,
            "rng": capture_rng_state(),
            "hooks": [h.state_dict() for h in self.hooks],
            "config": self.config,
            "config_version": CONFIG_VERSION,
            "world_size": self.world,
        }

    def save_checkpoint(self, name: str = "last.pt") -> None:
        """Write ``run_dir/name`` atomically on rank 0 (all ranks must call it: it ends with a barrier)."""
        if dist.is_main():  # the previous last.pt is kept as last.prev.pt: a fallback if last.pt gets damaged
            save_checkpoint(self.run_dir / name, self.state_dict(), keep_previous=name == "last.pt")
        dist.barrier()

    def resume(self, path: str | Path | None = None, state: dict[str, Any] | None = None) -> bool:
        """Load ``path`` (default: the run's newest complete checkpoint, ``last.pt`` or its fallback, see
        :func:`~demopose.engine.checkpoint.find_resume_checkpoint`); returns whether a checkpoint was loaded.
        ``state``: ``path``'s already loaded content."""
        if path:
            p = Path(path)
            if not p.is_file():
                raise FileNotFoundError(f"resume: checkpoint {p} does not exist")
            if state is None:
                state = load_training_checkpoint(p, map_location=self.device)
        else:
            found = find_resume_checkpoint(self.run_dir, map_location=self.device, remove_partials=dist.is_main())
            if found is None:
                return False
            p, state = found.path, found.state
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        if state.get("world_size", 1) == self.world:
            restore_rng_state(state["rng"])
        else:
            log.warning("resuming with %d processes from a %d-process checkpoint: RNG state not restored",
                        self.world, state.get("world_size", 1))
        for h, hs in zip(self.hooks, state.get("hooks", [])):
            h.load_state_dict(hs)
        log.info("resumed from %s at step %d", p, self.step)
        return True

    def start_at(self, step: int) -> None:
        """Begin a fresh run at ``step`` of its schedule: the continuation of a run whose weights were loaded
        (``train.init_from``) but whose optimiser state was not kept. The learning rate is the scheduler's value
        at ``step`` (a warm-up already done is not repeated), logging and checkpoints count from there, and the
        run stops at ``max_steps`` in total. The optimiser's moments start empty."""
        step = int(step)
        if not 0 <= step < self.max_steps:
            raise ValueError(f"train.start_step: expected a step in [0, train.max_steps={self.max_steps}), got {step}")
        self.step = step
        if self.scheduler is not None:
            sched = self.scheduler
            sched.last_epoch = step
            lrs = [base * fn(step) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)]
            for group, lr in zip(sched.optimizer.param_groups, lrs):
                group["lr"] = lr
            sched._last_lr = lrs
        log.info("starting at step %d of %d (train.start_step)", step, self.max_steps)

    # -- the loop ---------------------------------------------------------------------------------------
    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        self.sampler.set_epoch(epoch, start=start_batch * self.local_batch)
        g = torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch)  # never touches the global RNG
        return DataLoader(self.dataset, batch_size=self.local_batch, sampler=self.sampler,
                          collate_fn=self.collate_fn, num_workers=self.cfg.num_workers, drop_last=True,
                          generator=g, pin_memory=self.device.type == "cuda")

    def record(self, values: dict[str, float]) -> None:
        """Add values to this step's records (written by the logger hooks)."""
        self.records.update(values)

    def run_step(self, batch: Any) -> None:
        self.model.train()
        batch = move_to_device(batch, self.device)
        with autocast(self.cfg.precision, self.device):
            pred = self.model(batch)
        if self.cfg.precision != "fp32":
            pred = float32_outputs(pred)
        losses = self.raw_model.loss(pred, batch)
        if not losses:
            raise ValueError("model.loss returned no loss terms")
        total = sum(losses.values())
        if not torch.isfinite(total):
            raise FloatingPointError(f"step {self.step}: non-finite loss "
                                     f"{ {k: float(v) for k, v in losses.items()} }")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        values = torch.stack([total.detach()] + [v.detach() for v in losses.values()])
        values = dist.reduce_mean(values).tolist()
        self.records = {"loss/total": values[0], **{f"loss/{k}": v for k, v in zip(losses, values[1:])},
                        "lr": self.optimizer.param_groups[0]["lr"]}

    def train(self) -> None:
        """Run from ``self.step`` to ``max_steps``; ``after_train`` hooks run even on failure."""
        if dist.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            for h in self.hooks:
                h.before_train()
            while self.step < self.max_steps:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                for batch in self._loader(epoch, start):
                    for h in self.hooks:
                        h.before_step()
                    self.run_step(batch)
                    self.step += 1
                    for h in self.hooks:
                        h.after_step()
                    if self.step >= self.max_steps:
                        break
        finally:
            for h in self.hooks:
                h.after_train()
        log.info("trained to step %d in %.1f s", self.step, time.perf_counter() - t0)
