"""Batched k-nearest neighbours and neighbour gathering in pure torch.

Distances come from ``torch.cdist`` (matrix-multiply form) and neighbours from ``torch.topk``; the
query set is processed in chunks so that the ``(B, chunk, N)`` distance block stays within a fixed
element budget. Works for xyz (C = 3) and for feature-space neighbours (any C, HS-Pose RF-F).
"""

from __future__ import annotations

import torch

from demopose._checks import check_shape

__all__ = ["gather_points", "knn_indices", "nearest_indices"]

# Largest distance block (B * chunk * N elements) materialised at once: 2^24 floats = 64 MiB.
_MAX_BLOCK = 1 << 24


def gather_points(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather per-point rows by index, batch-wise.

    Args:
        x: ``(B, N, C)`` values per point.
        index: ``(B, M, K)`` or ``(B, M)`` integer indices into ``N``.

    Returns:
        ``(B, M, K, C)`` (or ``(B, M, C)``) with ``out[b, m, k] = x[b, index[b, m, k]]``.
    """
    B, N, C = x.shape
    base = torch.arange(B, device=x.device).view(B, *([1] * (index.dim() - 1))) * N
    flat = (index + base).reshape(-1)
    return x.reshape(B * N, C).index_select(0, flat).view(*index.shape, C)


def knn_indices(
    query: torch.Tensor,
    ref: torch.Tensor | None = None,
    k: int = 10,
    exclude_self: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Indices of the ``k`` nearest ``ref`` points of every ``query`` point (Euclidean).

    Args:
        query: ``(B, M, C)`` query points or features.
        ref: ``(B, N, C)`` reference set; ``None`` means ``ref = query`` (then ``M = N``).
        k: number of neighbours, ``1 <= k <= N`` (``N - 1`` when ``exclude_self``).
        exclude_self: with ``ref is None``, never return the query point itself (its own index);
            a duplicate of the point at distance 0 is still a valid neighbour.
        chunk_size: query points per block; ``None`` picks it from a 64 MiB budget.

    Returns:
        ``(B, M, k)`` int64 indices into ``N``, nearest first.

    Raises:
        ValueError: on shape mismatch or an impossible ``k``.
    """
    dims = check_shape(query, "B M C", "query")
    same = ref is None
    if same:
        ref = query
    else:
        check_shape(ref, "B N C", "ref", dims)
    if exclude_self and not same:
        raise ValueError("knn_indices: exclude_self=True needs ref=None (query and ref the same set)")
    B, M, _ = query.shape
    N = ref.shape[1]
    available = N - 1 if exclude_self else N
    if not 1 <= k <= available:
        raise ValueError(f"knn_indices: k must be in [1, {available}] for {N} reference points, got {k}")
    if chunk_size is None:
        # one block while torch.export traces (ONNX export): B is symbolic there
        chunk_size = M if torch.compiler.is_exporting() else max(1, _MAX_BLOCK // max(1, B * N))
    out = []
    with torch.no_grad():  # indices carry no gradient; keep the distance blocks out of the graph
        query, ref = query.detach(), ref.detach()
        for start in range(0, M, chunk_size):  # loop over memory blocks, not over points
            q = query[:, start : start + chunk_size]
            d = torch.cdist(q, ref, compute_mode="use_mm_for_euclid_dist")  # (B, m, N)
            if exclude_self:
                rows = torch.arange(q.shape[1], device=query.device)
                d[:, rows, rows + start] = float("inf")
            if k == 1:  # nearest point: a plain arg-min (cheaper than a top-k selection)
                out.append(d.argmin(dim=-1, keepdim=True))
            else:
                out.append(torch.topk(d, k, dim=-1, largest=False, sorted=True).indices)
    return out[0] if len(out) == 1 else torch.cat(out, dim=1)


def nearest_indices(query: torch.Tensor, ref: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Index of the nearest ``ref`` point of every ``query`` point.

    ``query (B, M, C)``, ``ref (B, N, C)`` -> ``(B, M)`` int64.
    """
    return knn_indices(query, ref, k=1, chunk_size=chunk_size)[..., 0]
