"""Training precision: ``train.precision`` = ``auto`` | ``fp32`` | ``bf16``.

``bf16`` runs the model's forward under :func:`torch.autocast` with bfloat16 (matrix products and
convolutions in bf16, accumulated in fp32; everything else in its input dtype). The models take their
outputs back to fp32 before vector normalisations and rotation recovery, the engine computes the losses
outside autocast, and the optimiser updates the fp32 master weights, so only the products run in bf16.

``auto`` picks bf16 only where it measurably wins: a CUDA device that supports bf16, or a CPU with AMX
tiles (Intel Sapphire Rapids and later), where a bf16 product runs several times faster than fp32
(``python benchmarks/train_speed.py`` records the figures). CPUs with AVX512-BF16 but no AMX gain little
and stay fp32; ask for ``bf16`` explicitly to use them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from demopose._cpuinfo import cpuinfo_field

__all__ = ["PRECISIONS", "autocast", "cpu_has_amx", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_amx() -> bool:
    """Whether ``/proc/cpuinfo`` lists the AMX bf16 tile instructions (``amx_bf16``)."""
    flags = (cpuinfo_field("flags") or "").split()
    return "amx_bf16" in flags and "amx_tile" in flags


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``fp32`` or ``bf16`` for ``precision`` on ``device`` (``auto``: see the module docstring).

    Raises:
        ValueError: an unknown ``precision``, or ``bf16`` on a device without bf16 support.
    """
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if device.type == "cpu" and cpu_has_amx() else "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("train.precision=bf16: this CUDA device does not support bfloat16 (use fp32)")
    return precision


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str = "cpu") -> Iterator[None]:
    """:func:`torch.autocast` to bfloat16 for ``precision == "bf16"``, nothing for ``fp32``."""
    device = torch.device(device)
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
