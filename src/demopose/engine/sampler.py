"""A deterministic, resumable, distributed sampler whose samples carry their own random seed.

Each epoch's order is a function of ``(seed, epoch)`` only, and every sample index comes with a seed
derived from ``(seed, epoch, index)``. Datasets that draw their augmentations from that seed give the
same batch for the same step whatever the number of workers or ranks, and a resumed run can start in
the middle of an epoch by skipping the samples already consumed — so resuming after a kill reproduces
an uninterrupted run exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["ResumableSampler", "sample_seed"]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample of one epoch (NumPy SeedSequence mixing)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class ResumableSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, sample_seed)`` for this rank.

    Args:
        length: dataset size.
        seed: base seed of the run.
        shuffle: permute each epoch.
        rank, world_size: this process' share (indices ``rank::world_size`` of the epoch order, padded by
            wrapping so every rank gets the same count).
        drop_last_to: if set, the epoch is truncated to a multiple of this many *global* samples
            (``batch_size · world_size``), so every rank runs the same number of full batches.
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                 drop_last_to: int | None = None) -> None:
        if length <= 0:
            raise ValueError("ResumableSampler: the dataset is empty")
        self.length, self.seed, self.shuffle = length, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.drop_last_to = drop_last_to
        self.epoch = 0
        self.start = 0  # samples of this rank already consumed in the current epoch

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch, and the number of this rank's samples to skip (for resuming)."""
        self.epoch, self.start = epoch, start

    def _global_order(self) -> np.ndarray:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.length, generator=g).numpy()
        else:
            order = np.arange(self.length)
        total = self.length
        if self.drop_last_to:
            total = (self.length // self.drop_last_to) * self.drop_last_to
            if total == 0:
                raise ValueError(f"ResumableSampler: {self.length} samples cannot fill one global batch "
                                 f"of {self.drop_last_to}")
        else:
            total = -(-self.length // self.world_size) * self.world_size
        reps = -(-total // self.length)
        return np.tile(order, reps)[:total]

    def per_rank(self) -> int:
        """Samples per rank per epoch."""
        return len(self._global_order()) // self.world_size

    def __len__(self) -> int:
        return self.per_rank() - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        mine = self._global_order()[self.rank :: self.world_size]
        for i in mine[self.start :]:
            yield int(i), sample_seed(self.seed, self.epoch, int(i))
