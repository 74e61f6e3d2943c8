"""The exact k-nearest-neighbour kernel (``knn.c``) for :mod:`demopose.layers.knn`.

Same neighbours, in the same order, as :func:`demopose.layers.knn.knn_indices` under
:func:`~demopose.layers.knn.exact_distances` (difference-form float32 distances, equal distances lower index
first), and so as the exported ONNX graphs; faster than that path and than the matrix-multiply form with
``torch.topk`` on CPU (BENCHMARKS.md, "Compiled CPU kernels and the folded detector";
``benchmarks/knn_native.py``). Points of at most 3 coordinates, at most
:data:`MAX_K` neighbours. Coordinates must be finite: with NaN or infinite coordinates the neighbours are
unspecified (as they are in the torch forms, which disagree with each other there).
"""

from __future__ import annotations

import ctypes
import functools

import torch

from demopose.native._build import INT64, POINTER, applicable, load_library

__all__ = ["MAX_K", "available", "knn", "usable"]

MAX_K = 64
"""Neighbours per query the kernel keeps at most (``knn.c``)."""

_SIGNATURES = {
    "knn_exact": (ctypes.c_int, [POINTER, POINTER] + [INT64] * 5 + [ctypes.c_int, POINTER, POINTER, ctypes.c_int]),
    "knn_max_k": (ctypes.c_int, []),
}


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The loaded kernel (once per process: its size limit checked at load, not on every call)."""
    lib = load_library("knn", _SIGNATURES)
    if lib is not None and lib.knn_max_k() != MAX_K:  # the module and its C source disagree: a packaging error
        raise RuntimeError(f"native knn: the library keeps {lib.knn_max_k()} neighbours, this module expects {MAX_K}")
    return lib


def available() -> bool:
    """Whether the kernel is built and loaded (builds it on the first call)."""
    return _library() is not None


def usable(query: torch.Tensor, ref: torch.Tensor, k: int) -> bool:
    """Whether :func:`knn` applies: CPU float32 points of at most 3 coordinates, ``k <= MAX_K``, not while
    tracing (:func:`~demopose.native.applicable`), kernel available."""
    return 1 <= query.shape[-1] <= 3 and k <= MAX_K and applicable(query, ref) and available()


def knn(query: torch.Tensor, ref: torch.Tensor, k: int, exclude_self: bool = False) -> torch.Tensor:
    """Indices of the ``k`` nearest ``ref`` points of every ``query`` point, nearest first.

    Args:
        query: ``(B, M, C)`` float32, ``C <= 3``.
        ref: ``(B, N, C)`` float32 (the same tensor as ``query`` with ``exclude_self``).
        k: ``1 <= k <= min(N, MAX_K)`` (``N - 1`` with ``exclude_self``).
        exclude_self: query ``i`` never returns index ``i`` (``query`` and ``ref`` are one set).

    Returns:
        ``(B, M, k)`` int64.

    Raises:
        RuntimeError: the kernel is unavailable. ValueError: arguments out of range (checked here too, since
        the kernel trusts them).
    """
    lib = _library()
    if lib is None:
        raise RuntimeError("the compiled kNN kernel is unavailable (see the warning when it was built)")
    B, M, C = query.shape
    N = ref.shape[1]
    if ref.shape[0] != B or ref.shape[2] != C or not 1 <= C <= 3:
        raise ValueError(f"query {tuple(query.shape)} / ref {tuple(ref.shape)}: expected (B, M, C) / (B, N, C), "
                         "C <= 3")
    if exclude_self and M != N:
        raise ValueError("exclude_self needs query and ref to be one set")
    if not 1 <= k <= min(N - (1 if exclude_self else 0), MAX_K):
        raise ValueError(f"k: expected 1 <= k <= {min(N - (1 if exclude_self else 0), MAX_K)}, got {k}")
    if query.dtype != torch.float32 or ref.dtype != torch.float32:
        raise ValueError("the kNN kernel takes float32 points")
    if query.device.type != "cpu" or ref.device.type != "cpu":
        raise ValueError("the kNN kernel takes CPU tensors")
    query = query.contiguous()
    ref_t = ref.transpose(1, 2).contiguous()  # (B, C, N): each coordinate a contiguous row
    out = torch.empty(B, M, k, dtype=torch.int64)
    threads = max(1, min(torch.get_num_threads(), B * M))
    scratch = torch.empty(threads, N, dtype=torch.float32)
    lib.knn_exact(query.data_ptr(), ref_t.data_ptr(), B, M, N, C, k, int(exclude_self), out.data_ptr(),
                  scratch.data_ptr(), threads)
    return out
