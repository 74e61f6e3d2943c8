"""Everything distributed, in one place: called only by the engine and the evaluator.

Distributed mode is on when the process was started by ``torchrun`` (``RANK`` / ``WORLD_SIZE`` set).
CPU runs use the gloo backend, CUDA runs NCCL; ``LOCAL_RANK`` picks the GPU.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as tdist

__all__ = ["all_gather_objects", "barrier", "init_distributed", "is_distributed", "is_main", "rank",
           "reduce_mean", "resolve_device", "world_size", "cleanup"]


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
