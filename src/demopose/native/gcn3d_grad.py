"""The 3D-GC neighbour aggregation as an autograd function with a compiled backward (``gcn3d_grad.c``), for
training on CPU.

Computes, for ``R = B·N`` rows (``B`` instances of ``N`` points), ``k`` unit neighbour directions ``u_ij``,
normalised support directions ``d`` ``(3, S·C)`` and, for the graph convolution, per-support features ``g``::

    out_ic = scale * sum_s max_j ReLU(u_ij . d_(sC+c)) * g[idx_ij, sC+c]

the same values as the torch path of :class:`~demopose.layers.gcn3d.GraphConv` /
:class:`~demopose.layers.gcn3d.SurfaceConv`, with gradients for ``u``, ``d`` and ``g``, without writing the
``(rows, k, S·C)`` intermediates that path keeps for its backward (the forward stores one byte per ``(row, S·C)``
value: the maximising neighbour). float32 and float64 (for :func:`torch.autograd.gradcheck`), CPU only.
"""

from __future__ import annotations

import ctypes

import torch

from demopose.native._build import INT64, POINTER, load_library, native_disabled
from demopose.native.gcn3d import check_direction_shapes

__all__ = ["MAX_NEIGHBOURS", "aggregate", "available", "usable"]

MAX_NEIGHBOURS = 255
"""Neighbours per row the kernel handles (the maximising one is stored in a byte)."""

_COMMON = [INT64] * 5
_SIGNATURES = {
    "gcn3d_forward_f32": (ctypes.c_int, [POINTER] * 6 + _COMMON + [ctypes.c_float, ctypes.c_int]),
    "gcn3d_forward_f64": (ctypes.c_int, [POINTER] * 6 + _COMMON + [ctypes.c_double, ctypes.c_int]),
    "gcn3d_backward_f32": (ctypes.c_int, [POINTER] * 9 + _COMMON + [ctypes.c_float, ctypes.c_int]),
    "gcn3d_backward_f64": (ctypes.c_int, [POINTER] * 9 + _COMMON + [ctypes.c_double, ctypes.c_int]),
    "gcn3d_parts": (ctypes.c_int, [INT64, ctypes.c_int]),
}
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def _library() -> ctypes.CDLL | None:
    return load_library("gcn3d_grad", _SIGNATURES)


def available() -> bool:
    """Whether the kernel is built and loaded (builds it on the first call)."""
    return _library() is not None


def usable(directions: torch.Tensor, *tensors: torch.Tensor) -> bool:
    """Whether :func:`aggregate` applies: CPU float32/float64 tensors of one dtype, at most
    :data:`MAX_NEIGHBOURS` neighbours, outside ``torch.compile`` / export / jit tracing, the kernel available."""
    ts = (directions, *tensors)
    if any(t.device.type != "cpu" or t.dtype not in _SUFFIX or t.dtype != directions.dtype for t in ts):
        return False
    if directions.shape[1] > MAX_NEIGHBOURS or native_disabled():
        return False
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing():
        return False
    return available()


def _ptr(t: torch.Tensor | None) -> int | None:
    return t.data_ptr() if t is not None else None


class _Aggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, d, g, index, support_num: int, scale: float, rows_per_instance: int):
        lib = _library()
        R, k, _ = u.shape
        M = d.shape[1]
        C = M // support_num
        u, d = u.contiguous(), d.contiguous()
        g = g.contiguous() if g is not None else None
        index = index.contiguous() if index is not None else None
        out = torch.empty(R, C, dtype=u.dtype)
        arg = torch.empty(R, M, dtype=torch.uint8)
        fn = getattr(lib, f"gcn3d_forward_{_SUFFIX[u.dtype]}")
        if fn(_ptr(u), _ptr(d), _ptr(g), _ptr(index), _ptr(out), _ptr(arg), R // rows_per_instance,
              rows_per_instance, k, support_num, C, scale, torch.get_num_threads()):
            raise MemoryError("gcn3d_grad: scratch memory could not be allocated")
        ctx.save_for_backward(u, d, g, index, arg)
        ctx.shape = (support_num, scale, rows_per_instance)
        ctx.mark_non_differentiable(arg)
        return out

    @staticmethod
    def backward(ctx, dout):
        lib = _library()
        u, d, g, index, arg = ctx.saved_tensors
        support_num, scale, rows_per_instance = ctx.shape
        R, k, _ = u.shape
        M = d.shape[1]
        C = M // support_num
        instances = R // rows_per_instance
        threads = torch.get_num_threads()
        parts = lib.gcn3d_parts(instances, threads)
        dout = dout.contiguous().to(u.dtype)
        du = torch.zeros_like(u)
        dd = torch.zeros(parts, 3, M, dtype=u.dtype)
        dg = torch.zeros_like(g) if g is not None else None
        fn = getattr(lib, f"gcn3d_backward_{_SUFFIX[u.dtype]}")
        fn(_ptr(u), _ptr(d), _ptr(g), _ptr(index), _ptr(dout), _ptr(arg), _ptr(du), _ptr(dd), _ptr(dg), instances,
           rows_per_instance, k, support_num, C, scale, threads)
        return du, dd.sum(0), dg, None, None, None, None


def aggregate(
    directions: torch.Tensor,
    support_directions: torch.Tensor,
    support_num: int,
    rows_per_instance: int,
    support: torch.Tensor | None = None,
    index: torch.Tensor | None = None,
    scale: float = 1.0,
) -> torch.Tensor:
    """The aggregation with autograd support (module docstring).

    Args:
        directions: ``(R, k, 3)`` unit neighbour directions, ``R = B · rows_per_instance``.
        support_directions: ``(3, S·C)`` unit support directions.
        support_num: ``S``.
        rows_per_instance: ``N``; the neighbours of every row lie in its own instance (rows ``b·N .. b·N+N-1``
            of ``support``), as :class:`~demopose.layers.gcn3d.GraphConv` builds ``index``.
        support: ``(B·N, S·C)`` per-support features, or None (surface convolution).
        index: ``(R, k)`` int64 rows of ``support``; required with ``support``.
        scale: ``1`` to sum over the supports, ``1 / S`` for their mean.

    Returns:
        ``(R, C)`` in the inputs' dtype.

    Raises:
        RuntimeError: the kernel is unavailable (check :func:`usable` first).
        ValueError: shapes that do not fit together.
    """
    if _library() is None:
        raise RuntimeError("the compiled 3D-GC training kernel is unavailable (see the warning when it was built)")
    R, k, M = check_direction_shapes(directions, support_directions, support_num)
    if rows_per_instance < 1 or R % rows_per_instance:
        raise ValueError(f"rows_per_instance={rows_per_instance} does not divide the {R} rows")
    if k > MAX_NEIGHBOURS:
        raise ValueError(f"directions: at most {MAX_NEIGHBOURS} neighbours, got {k}")
    if support is not None:
        if index is None or index.shape != (R, k) or index.dtype != torch.int64:
            raise ValueError(f"index: expected an int64 ({R}, {k}) tensor with support")
        if support.shape != (R, M):
            raise ValueError(f"support {tuple(support.shape)}: expected ({R}, {M})")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= R):
            raise ValueError(f"index: values must lie in [0, {R}), got [{int(index.min())}, {int(index.max())}]")
        if support.dtype != directions.dtype:
            raise ValueError(f"support: dtype {support.dtype}, expected {directions.dtype} like the directions")
    return _Aggregate.apply(directions, support_directions, support, index, support_num, float(scale),
                            rows_per_instance)
