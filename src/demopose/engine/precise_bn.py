"""Precise BatchNorm statistics: recompute the running mean and variance of a model's trainable BatchNorm layers
in fp32 over a fixed number of training batches, with the final weights.

Why: under ``train.precision=bf16`` a BatchNorm layer's running statistics are the statistics of its *bf16*
inputs, and the products that feed it carry rounding noise that accumulates through the network. Inference runs in
fp32 (``demopose test``, ``predict``, the ONNX export), where the same inputs are less noisy: the normalisation then
no longer matches what the next layer was trained on. Measured on an AG-Pose fitted to 32 instances
(``benchmarks/cleanpose_bn_precision.py``, issue #16): rotation median 5.5° in train mode, 14.2° in eval mode in
fp32 with the bf16-collected statistics, 5.5° again after recomputing them in fp32. Recomputing the statistics
with the final weights is also what "precise BN" does for momentum statistics that lag the weights (Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021; fvcore's ``update_bn_stats``).

:func:`update_bn_stats` does the recomputation; :class:`PreciseBNHook` runs it in a training run before each
evaluation and before the final checkpoint (``train.precise_bn``: ``auto`` runs it when the run trains in
reduced precision and the model has trainable BatchNorm layers; ``always``; ``never``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

from demopose.engine import dist
from demopose.engine.checkpoint import capture_rng_state, restore_rng_state
from demopose.engine.hooks import HookBase

if TYPE_CHECKING:
    from torch.utils.data import Dataset

__all__ = ["PRECISE_BN_MODES", "PreciseBNHook", "trainable_batchnorms", "update_bn_stats", "wants_precise_bn"]

log = logging.getLogger(__name__)

PRECISE_BN_MODES = ("auto", "always", "never")

_BN = torch.nn.modules.batchnorm._BatchNorm


def trainable_batchnorms(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The BatchNorm layers of ``model`` that track statistics and are in training mode after ``model.train()``
    (frozen sub-networks, e.g. DeMo-Pose's detector, keep theirs in eval mode and are left out)."""
    was_training = model.training
    model.train()
    try:
        return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats and m.training]
    finally:
        model.train(was_training)


@torch.no_grad()
def update_bn_stats(model: torch.nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any] | None = None) -> int:
    """Replace the running statistics of ``model``'s trainable BatchNorm layers by their average over ``batches``.

    Each batch is run through ``forward`` (default: ``model(batch)``) in train mode, in the caller's precision
    (call it outside autocast for fp32 statistics), without gradients. The average is an equal-weight mean over
    the batches (``momentum=None``); under several processes it is averaged over the ranks too. The layers'
    momentum and the model's mode are restored.

    Args:
        model: the model.
        batches: an iterable of model inputs (at least one).
        forward: how to run one batch (e.g. moving it to the device first).

    Returns:
        the number of BatchNorm layers updated (0: nothing to do, ``batches`` is not consumed).

    Raises:
        ValueError: ``batches`` was empty.
    """
    bns = trainable_batchnorms(model)
    if not bns:
        return 0
    forward = forward or model
    momenta = [m.momentum for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()  # zero mean, unit variance, num_batches_tracked 0
        m.momentum = None  # cumulative moving average: the equal-weight mean of the batches seen
    model.train()
    n = 0
    try:
        for batch in batches:
            forward(batch)
            n += 1
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.train(was_training)
    if n == 0:
        raise ValueError("update_bn_stats: no batches")
    if dist.world_size() > 1:
        for m in bns:
            m.running_mean.copy_(dist.reduce_mean(m.running_mean))
            m.running_var.copy_(dist.reduce_mean(m.running_var))
    return len(bns)


class PreciseBNHook(HookBase):
    """Recompute the BatchNorm statistics in fp32 (:func:`update_bn_stats`) over ``batches`` training batches before
    each evaluation (every ``every`` steps) and at the last step, so that validation and ``model_final.pt`` use
    statistics that fit fp32 inference. Place it before the checkpoint and evaluation hooks.

    The batches are drawn from ``dataset`` by their own generator (seeded by the run's seed and the step), never from
    the training loader, and the global RNG state is restored afterwards: the training stream, and so an exact
    resume, is unchanged.

    Args:
        dataset: the training set (``dataset[(index, seed)]``).
        collate_fn: batches samples.
        batches: number of batches (of the run's per-process batch size).
        every: also before the evaluations of this period (0: only at the end).
    """

    def __init__(self, dataset: Dataset, collate_fn: Callable[[list[Any]], Any] | None, batches: int = 32,
                 every: int = 0) -> None:
        if batches < 1:
            raise ValueError(f"train.precise_bn_batches: expected a positive number of batches, got {batches}")
        self.dataset, self.collate_fn, self.batches, self.every = dataset, collate_fn, int(batches), int(every)

    def _batches(self, step: int) -> Iterable[Any]:
        from demopose.engine.sampler import sample_seed
        from demopose.engine.trainer import move_to_device

        t = self.trainer
        n = len(self.dataset)
        g = torch.Generator().manual_seed(int(t.cfg.seed) * 1_000_003 + step * 31 + dist.rank())
        order = torch.randperm(n, generator=g).tolist()
        size = t.local_batch
        for b in range(self.batches):
            idx = [order[(b * size + j) % n] for j in range(size)]
            samples = [self.dataset[(i, sample_seed(int(t.cfg.seed) + 17, step, i))] for i in idx]
            yield move_to_device(self.collate_fn(samples) if self.collate_fn else samples, t.device)

    def run(self) -> int:
        """Recompute the statistics now; returns the number of layers updated."""
        t = self.trainer
        rng = capture_rng_state()
        try:
            n = update_bn_stats(t.raw_model, self._batches(t.step))
        finally:
            restore_rng_state(rng)
        if n:
            log.info("step %d: BatchNorm statistics of %d layers recomputed in fp32 over %d batches", t.step, n,
                     self.batches)
        return n

    def after_step(self) -> None:
        t = self.trainer
        if (self.every and t.step % self.every == 0) or t.step >= t.max_steps:
            self.run()


def wants_precise_bn(mode: str, precision: str, model: torch.nn.Module) -> bool:
    """Whether a run with ``train.precise_bn=mode`` at ``precision`` recomputes its BatchNorm statistics.

    Raises:
        ValueError: an unknown mode.
    """
    mode = str(mode).lower()
    if mode not in PRECISE_BN_MODES:
        raise ValueError(f"train.precise_bn: expected one of {', '.join(PRECISE_BN_MODES)}, got {mode!r}")
    if mode == "never" or not trainable_batchnorms(model):
        return False
    return mode == "always" or precision != "fp32"
