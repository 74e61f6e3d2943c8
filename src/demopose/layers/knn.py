"""Batched k-nearest neighbours and neighbour gathering.

In torch, distances come from ``torch.cdist`` (matrix-multiply form) and neighbours from ``torch.topk``; the
query set is processed in chunks so that the ``(B, chunk, N)`` distance block stays within a fixed
element budget. Works for xyz (C = 3) and for feature-space neighbours (any C, HS-Pose RF-F). On CPU, xyz
points go to a compiled kernel instead (last paragraph).

Exact distances: the matrix-multiply form ``|q|² + |r|² − 2 q·r`` rounds differently in every BLAS, and
on real depth, whose back-projected pixel grid has many (near-)equidistant neighbours, a last-bit difference
swaps neighbours and visibly changes GPV-Pose's output (measured on the REAL275 fixture: up to 0.15 in rotation
matrix entries between float32 and float64). Under :func:`exact_distances` (and always while ``torch.export``
traces, i.e. in the exported ONNX graphs) point sets with ``C <= 3`` use the difference form
``(q_x − r_x)² + (q_y − r_y)² + (q_z − r_z)²`` summed in that order: elementwise IEEE operations that every
backend computes bit for bit alike, and equidistant neighbours are taken lower index first (a stable sort in
PyTorch, ONNX ``TopK``'s specified tie order in the graph), so PyTorch under :func:`exact_distances` and
onnxruntime select the same neighbours. In torch it is more than ten times slower than the matrix-multiply form
with ``torch.topk`` on CPU (``benchmarks/results/knn_native.json``), hence not the default there.

On CPU, float32 points with ``C <= 3`` go to a compiled kernel (:mod:`demopose.native.knn`) that computes the
exact difference form and tie order, faster than either torch form: so CPU inference ranks neighbours exactly
like the ONNX graphs, whether or not :func:`exact_distances` is on. Where the kernel cannot run on CPU (no C
compiler, ``DEMOPOSE_NATIVE=0``, ``k`` above its limit) the torch path takes the same difference form and tie
order by default, so a CPU machine without a compiler picks the same neighbours as one with it (slower, not
different). On GPU the rule above holds (matrix-multiply form unless :func:`exact_distances` or export);
``exact_distances(False)`` forces the matrix-multiply form everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from demopose._checks import check_shape
from demopose.native import knn as native_knn

__all__ = ["exact_distances", "gather_points", "knn_indices", "nearest_indices", "squared_distances"]

_EXACT: bool | None = None  # None: exact while torch.export traces, the matrix-multiply form otherwise


@contextlib.contextmanager
def exact_distances(enabled: bool = True) -> Iterator[None]:
    """Within this context :func:`knn_indices` ranks points (``C <= 3``) by :func:`squared_distances` (the
    backend-independent difference form, module docstring) instead of ``torch.cdist``'s matrix-multiply form;
    ``enabled=False`` forces the matrix-multiply form, also while exporting (faster graphs that rank
    near-equidistant neighbours like no other backend in particular)."""
    global _EXACT
    before, _EXACT = _EXACT, bool(enabled)
    try:
        yield
    finally:
        _EXACT = before


def squared_distances(query: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``(B, M, C)``, ``(B, N, C)`` -> ``(B, M, N)`` squared Euclidean distances in the difference form, the
    channels summed in order (bit-identical across backends)."""
    d = None
    for c in range(query.shape[-1]):
        diff = query[..., c].unsqueeze(2) - ref[..., c].unsqueeze(1)
        d = diff * diff if d is None else d + diff * diff
    return d

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
    query, ref = query.detach(), ref.detach()  # indices carry no gradient
    if {query.dtype, ref.dtype} & {torch.bfloat16, torch.float16}:  # autocast outputs: ranked in float32
        query, ref = query.float(), ref.float()
    if _EXACT is not False and native_knn.usable(query, ref, k):
        return native_knn.knn(query, ref, k, exclude_self=exclude_self)
    if chunk_size is None:
        # one block while torch.export traces (ONNX export): B is symbolic there
        chunk_size = M if torch.compiler.is_exporting() else max(1, _MAX_BLOCK // max(1, B * N))
    out = []
    with torch.no_grad():  # keep the distance blocks out of the graph
        for start in range(0, M, chunk_size):  # loop over memory blocks, not over points
            q = query[:, start : start + chunk_size]
            exporting = torch.compiler.is_exporting()
            # default: exact while exporting and on CPU (the compiled kernel's ranking where it cannot run)
            default = exporting or query.device.type == "cpu"
            exact = (default if _EXACT is None else _EXACT) and q.shape[-1] <= 3
            if exact:
                d = squared_distances(q, ref)  # (B, m, N), same ranking as the distances
            else:
                d = torch.cdist(q, ref, compute_mode="use_mm_for_euclid_dist")  # (B, m, N)
            if exclude_self:
                rows = torch.arange(q.shape[1], device=query.device)
                d[:, rows, rows + start] = float("inf")
            if k == 1:  # nearest point: a plain arg-min (cheaper than a top-k selection); ties: first index
                out.append(d.argmin(dim=-1, keepdim=True))
            elif exact and not exporting:  # equal distances: lower index first, as ONNX TopK specifies
                out.append(_stable_smallest(d, k))
            else:
                out.append(torch.topk(d, k, dim=-1, largest=False, sorted=True).indices)
    return out[0] if len(out) == 1 else torch.cat(out, dim=1)


def _stable_smallest(d: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` smallest of ``d (..., N)`` (non-negative distances), equal values lower index first.
    float32: one top-k over int64 keys ``(bits of d) << 32 | index`` (the bit patterns of non-negative floats
    order like the floats; about four times faster than a stable sort of the whole row); else a stable sort."""
    if d.dtype == torch.float32:
        idx = torch.arange(d.shape[-1], device=d.device)
        key = (d.contiguous().view(torch.int32).to(torch.int64) << 32) | idx
        return torch.topk(key, k, dim=-1, largest=False, sorted=True).indices
    return torch.sort(d, dim=-1, stable=True).indices[..., :k]


def nearest_indices(query: torch.Tensor, ref: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Index of the nearest ``ref`` point of every ``query`` point.

    ``query (B, M, C)``, ``ref (B, N, C)`` -> ``(B, M)`` int64.
    """
    return knn_indices(query, ref, k=1, chunk_size=chunk_size)[..., 0]
