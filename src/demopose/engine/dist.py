"""Everything distributed, in one place: called only by the engine.

Distributed mode is on when the process was started by ``torchrun`` (``RANK`` / ``WORLD_SIZE`` set).
CPU runs use the gloo backend, CUDA runs NCCL; ``LOCAL_RANK`` picks the GPU.

Rule: every rank takes part in every collective. Evaluators hold no distributed code: the engine gathers
their :meth:`state` from every rank and merges it (:func:`gather_evaluator`); decisions taken from
evaluation results (the best checkpoint) use rank 0's results, broadcast (:func:`broadcast_object`).
Model state that DDP does not average either is made to agree: BatchNorm statistics over the batches of
all ranks with :func:`convert_sync_batchnorm` (``train.sync_bn``), the front-door dictionaries of
:mod:`demopose.models.causal` with :func:`share_dictionary_updates` (every rank enqueues the features of
all ranks, so DDP's broadcast of rank 0's buffers at each forward loses no update).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as tdist

__all__ = ["all_gather_objects", "all_gather_rows", "barrier", "broadcast_object", "cleanup",
           "convert_sync_batchnorm", "gather_evaluator", "init_distributed", "is_distributed", "is_main", "rank",
           "reduce_mean", "resolve_device", "share_dictionary_updates", "world_size"]


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0 (the only rank that writes files)."""
    return rank() == 0


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; anything else as given (``cpu``, ``cuda:1``)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def init_distributed(device: str = "auto") -> torch.device:
    """Initialise the process group when launched by torchrun; return the device for this rank."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not is_distributed():
        backend = "nccl" if use_cuda else "gloo"
        tdist.init_process_group(backend=backend)
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def cleanup() -> None:
    if is_distributed():
        tdist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        tdist.barrier()


def reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Average a tensor over ranks (identity when not distributed)."""
    if not is_distributed():
        return x
    y = x.detach().clone()
    tdist.all_reduce(y)
    return y / world_size()


def all_gather_objects(obj: Any) -> list[Any]:
    """Gather a picklable object from every rank (a one-element list when not distributed)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    tdist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (``obj`` itself when not distributed)."""
    if not is_distributed():
        return obj
    box = [obj if rank() == src else None]
    tdist.broadcast_object_list(box, src=src)
    return box[0]


def gather_evaluator(evaluator: Any) -> None:
    """Merge the frames every rank's ``evaluator`` processed into each of them (``state`` / ``load_state``,
    rank order), so that ``evaluate()`` scores the whole split on every rank. No-op on one process."""
    if world_size() > 1:
        evaluator.load_state(*all_gather_objects(evaluator.state()))


def all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x (n_r, ...)`` of every rank along dim 0 in rank order (``n_r`` may differ by rank)."""
    if not is_distributed() or world_size() == 1:
        return x
    x = x.contiguous()
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    tdist.all_gather(sizes, n)
    counts = [int(c) for c in sizes]
    pad = x.new_zeros((max(counts), *x.shape[1:]))
    pad[: x.shape[0]] = x
    parts = [torch.empty_like(pad) for _ in counts]
    tdist.all_gather(parts, pad)
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


def share_dictionary_updates(model: torch.nn.Module) -> int:
    """Make every front-door dictionary (:class:`~demopose.models.causal.ConfounderDictionary`) of ``model``
    enqueue the features of all ranks, in rank order, on every rank: the dictionaries stay identical across
    ranks and hold every rank's updates (DDP broadcasts rank 0's buffers at each forward, which otherwise
    drops the other ranks' updates). Every rank must run the same forwards (it does under DDP: equal
    per-rank batches). Returns the number of dictionaries; no-op on one process."""
    from demopose.models.causal import ConfounderDictionary

    if world_size() == 1:
        return 0
    n = 0
    for m in model.modules():
        if isinstance(m, ConfounderDictionary) and "enqueue" not in vars(m):
            local = m.enqueue

            def enqueue(feats: torch.Tensor, class_idx: torch.Tensor, _local=local) -> None:
                _local(all_gather_rows(feats.detach()), all_gather_rows(class_idx))

            m.enqueue = enqueue  # an instance attribute: the class (and its state dict) are unchanged
            n += 1
    return n


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum over ranks of the gradients (every rank's loss depends on it)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        tdist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.contiguous().clone()
        tdist.all_reduce(g)
        return g


class SyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics (mean and biased variance) are those of the batches of all ranks,
    on any device and backend (``torch.nn.SyncBatchNorm`` runs on GPUs only). Same parameters, buffers and
    state-dict keys as the BatchNorm it replaces; evaluation mode and single-process runs are plain BatchNorm.
    Gradients flow through the cross-rank sums (autograd-aware all-reduce), as in ``torch.nn.SyncBatchNorm``."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"SyncBatchNorm: expected at least 2D input (N, C, ...), got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed() and world_size() > 1):
            return super().forward(x)
        all_reduce = _AllReduceSum.apply
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        local = x.numel() // x.shape[1]
        sums = all_reduce(torch.cat([x.sum(dims), x.new_tensor([float(local)])]))
        count = sums[-1]
        mean = sums[:-1] / count
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / count  # two passes: no cancellation
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                total = float(count)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (total / max(total - 1, 1.0)), alpha=m)
        return y


def convert_sync_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Replace every BatchNorm of ``model`` by one computing its statistics over all ranks: on CUDA
    ``torch.nn.SyncBatchNorm`` (NCCL), elsewhere :class:`SyncBatchNorm`. The parameters are the same objects
    (an optimiser built on the model keeps working) and the state-dict keys do not change."""
    if any(p.is_cuda for p in model.parameters()):
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert(model)


def _convert(module: torch.nn.Module) -> torch.nn.Module:
    bn = torch.nn.modules.batchnorm
    if isinstance(module, bn._BatchNorm) and not isinstance(module, (SyncBatchNorm, torch.nn.SyncBatchNorm)):
        new = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module
