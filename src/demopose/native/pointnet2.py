"""Farthest point sampling and ball query indices (``pointnet2.c``) for :mod:`demopose.layers.pointnet2`.

The same indices as the torch code (:func:`demopose.geometry.sampling.farthest_point_sample` on a tensor,
:func:`demopose.layers.pointnet2.ball_query`), on CPU float32 points, without one Python-level step per pick
(FPS) or ``(B, M, N)`` distance blocks (ball query). Indices carry no gradient, so the kernels serve training
and inference alike.
"""

from __future__ import annotations

import ctypes

import torch

from demopose.native._build import INT64, POINTER, load_library, native_disabled

__all__ = ["available", "ball_query", "farthest_point_sample", "usable"]

_SIGNATURES = {
    "fps_f32": (ctypes.c_int, [POINTER, INT64, INT64, INT64, INT64, POINTER, ctypes.c_int]),
    "ball_query_f32": (ctypes.c_int, [POINTER, POINTER, INT64, INT64, INT64, ctypes.c_float, INT64, POINTER,
                                      ctypes.c_int]),
}


def _library() -> ctypes.CDLL | None:
    return load_library("pointnet2", _SIGNATURES)


def available() -> bool:
    """Whether the kernels are built and loaded (builds them on the first call)."""
    return _library() is not None


def usable(*tensors: torch.Tensor) -> bool:
    """CPU float32 points (any autograd state: only indices come back), outside tracing, kernels available."""
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors) or native_disabled():
        return False
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing():
        return False
    return available()


def farthest_point_sample(points: torch.Tensor, k: int, start: int = 0) -> torch.Tensor:
    """``(B, N, 3)`` float32 -> ``(B, k)`` int64 picks (``1 <= k <= N``, checked by the caller)."""
    p = points.detach().contiguous()
    B, N, _ = p.shape
    out = torch.empty(B, k, dtype=torch.int64)
    if _library().fps_f32(p.data_ptr(), B, N, k, start, out.data_ptr(), torch.get_num_threads()):
        raise MemoryError("farthest_point_sample: scratch memory could not be allocated")
    return out


def ball_query(points: torch.Tensor, centres: torch.Tensor, radius: float, nsample: int) -> torch.Tensor:
    """``(B, N, 3)``, ``(B, M, 3)`` float32 -> ``(B, M, nsample)`` int64 (see the module docstring)."""
    p, c = points.detach().contiguous(), centres.detach().contiguous()
    B, N, _ = p.shape
    M = c.shape[1]
    out = torch.empty(B, M, nsample, dtype=torch.int64)
    _library().ball_query_f32(p.data_ptr(), c.data_ptr(), B, N, M, float(radius) * float(radius), nsample,
                              out.data_ptr(), torch.get_num_threads())
    return out
