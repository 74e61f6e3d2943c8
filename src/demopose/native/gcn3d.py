"""The fused 3D-GC neighbour aggregation kernel (``gcn3d.c``) for :mod:`demopose.layers.gcn3d`.

For row ``i`` with ``k`` unit neighbour directions ``u_ij``, normalised support directions ``d`` and, for the
graph convolution, per-support features ``g`` gathered at the neighbours::

    out_ic = center_ic + scale * sum_s max_j ReLU(u_ij . d_(sC+c)) * g[idx_ij, sC+c]

(no ``g`` for the surface convolution, no ``center`` where none is given). The torch path of
:class:`~demopose.layers.gcn3d.GraphConv` computes the same through ``(rows, k, S·C)`` intermediates; the kernel
halves the time of the gpv backbone on CPU (BENCHMARKS.md, "Compiled CPU kernels and the folded detector";
``benchmarks/gcn3d_native.py``).
"""

from __future__ import annotations

import ctypes

import torch

from demopose.native._build import INT64, POINTER, applicable, load_library

__all__ = ["aggregate", "available", "check_direction_shapes", "usable"]

_SIGNATURES = {"gcn3d_aggregate": (ctypes.c_int, [POINTER] * 6 + [INT64] * 4 + [ctypes.c_float, ctypes.c_int])}


def _library() -> ctypes.CDLL | None:
    return load_library("gcn3d", _SIGNATURES)


def available() -> bool:
    """Whether the kernel is built and loaded (builds it on the first call)."""
    return _library() is not None


def usable(*tensors: torch.Tensor) -> bool:
    """Whether :func:`aggregate` applies to these float inputs (:func:`~demopose.native.applicable`) and the
    kernel is available."""
    return applicable(*tensors) and available()


def check_direction_shapes(directions: torch.Tensor, support_directions: torch.Tensor,
                           support_num: int) -> tuple[int, int, int]:
    """``(R, k, M)`` of ``directions (R, k, 3)`` and ``support_directions (3, M)``, ``M = S·C``; ValueError naming
    both shapes otherwise (both 3D-GC kernels)."""
    R, k, three = directions.shape
    M = support_directions.shape[1]
    if three != 3 or support_directions.shape[0] != 3 or M % support_num:
        raise ValueError(f"directions {tuple(directions.shape)} / support_directions "
                         f"{tuple(support_directions.shape)}: expected (R, k, 3) / (3, S*C) with S = {support_num}")
    return R, k, M


def aggregate(
    directions: torch.Tensor,
    support_directions: torch.Tensor,
    support_num: int,
    support: torch.Tensor | None = None,
    index: torch.Tensor | None = None,
    center: torch.Tensor | None = None,
    scale: float = 1.0,
) -> torch.Tensor:
    """Run the kernel.

    Args:
        directions: ``(R, k, 3)`` unit neighbour directions ``u_ij``.
        support_directions: ``(3, S·C)`` unit support directions ``d``.
        support_num: ``S``.
        support: ``(P, S·C)`` per-support features ``g`` (graph convolution), or None (surface convolution).
        index: ``(R, k)`` int64 rows of ``support`` (``0 <= index < P``); required with ``support``.
        center: ``(R, C)`` added to the result, or None.
        scale: ``1`` to sum over the supports, ``1 / S`` for their mean.

    Returns:
        ``(R, C)`` float32.

    Raises:
        RuntimeError: the kernel is unavailable (check :func:`usable` first).
        ValueError: shapes or dtypes that do not fit together, or an index outside ``support``.
    """
    lib = _library()
    if lib is None:
        raise RuntimeError("the compiled 3D-GC kernel is unavailable (see the warning when it was built)")
    R, k, M = check_direction_shapes(directions, support_directions, support_num)
    C = M // support_num
    tensors = [directions, support_directions] + [t for t in (support, center) if t is not None]
    if any(t.dtype != torch.float32 for t in tensors):
        raise ValueError("the 3D-GC kernel takes float32 tensors")
    if any(t.device.type != "cpu" for t in [*tensors, *([index] if index is not None else [])]):
        raise ValueError("the 3D-GC kernel takes CPU tensors")
    if support is not None:
        if index is None or index.shape != (R, k) or index.dtype != torch.int64:
            raise ValueError(f"index: expected an int64 ({R}, {k}) tensor with support, got "
                             f"{None if index is None else (tuple(index.shape), index.dtype)}")
        if support.dim() != 2 or support.shape[1] != M:
            raise ValueError(f"support {tuple(support.shape)}: expected (P, {M})")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= support.shape[0]):
            raise ValueError(f"index: values must lie in [0, {support.shape[0]}), got "
                             f"[{int(index.min())}, {int(index.max())}]")
        support, index = support.contiguous(), index.contiguous()
    if center is not None and center.shape != (R, C):
        raise ValueError(f"center {tuple(center.shape)}: expected ({R}, {C})")
    directions, support_directions = directions.contiguous(), support_directions.contiguous()
    center = center.contiguous() if center is not None else None
    out = torch.empty(R, C, dtype=torch.float32)

    def ptr(t: torch.Tensor | None) -> int | None:
        return t.data_ptr() if t is not None else None

    lib.gcn3d_aggregate(ptr(directions), ptr(support_directions), ptr(support), ptr(index), ptr(center),
                        ptr(out), R, k, support_num, C, float(scale), torch.get_num_threads())
    return out
