"""3D graph convolution (3D-GC) layers.

Lin, Huang, Wang, "Convolution in the Cloud: Learning Deformable Kernels in 3D Graph Convolution
Networks for Point Cloud Analysis", CVPR 2020 (zhihao-lin/3dgcn), in the form used by GPV-Pose
(lolrudy/GPV_Pose : network/fs_net_repo/gcn3d.py, notes/depth_and_eval.md §1.2).

A kernel is ``S`` learnable unit *support directions* ``d_s``. For a point ``p_i`` with neighbours
``p_j`` and unit neighbour directions ``u_ij = (p_j - p_i) / |p_j - p_i|``, the similarity is
``θ_ijs = ReLU(u_ij · d_s)``:

* surface conv (no input features): ``f_i,k = agg_s max_j θ_ij,sk``;
* graph conv: ``f W + b`` is split into a centre part ``c_i`` and per-support parts ``g_j,s``;
  ``out_i = c_i + agg_s max_j (θ_ijs ⊙ g_j,s)``;
* random pooling: max over the 4 nearest neighbours, then keep a random ``N // rate`` subset.

``agg`` is a sum in 3D-GC / GPV-Pose and a mean in HS-Pose (notes §2). Everything is batched; the
neighbour index is computed once per resolution by the caller (:mod:`demopose.layers.knn`).

On CPU the ``max_j`` / ``agg_s`` step runs in a compiled kernel, which never writes the ``(points, k, S·C)``
intermediates of the torch path below: :mod:`demopose.native.gcn3d` at inference, :mod:`demopose.native.gcn3d_grad`
(an autograd function with a compiled backward) in training. Elsewhere (GPU, export, ``torch.compile``, no C
compiler, ``DEMOPOSE_NATIVE=0``) the torch path computes the same values. Under CPU autocast the per-support
features are taken back to float32 for the kernels.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from demopose.layers.knn import gather_points, knn_indices, nearest_indices
from demopose.native import gcn3d as native_gcn3d
from demopose.native import gcn3d_grad as native_gcn3d_grad

__all__ = [
    "GraphConv",
    "RandomPool",
    "SurfaceConv",
    "neighbor_directions",
    "upsample_nearest",
]

Aggregate = Literal["sum", "mean"]


def neighbor_directions(vertices: torch.Tensor, neighbor_index: torch.Tensor) -> torch.Tensor:
    """Unit directions from each point to its neighbours.

    Args:
        vertices: ``(B, N, 3)`` points.
        neighbor_index: ``(B, N, K)`` neighbour indices.

    Returns:
        ``(B, N, K, 3)``; a neighbour at distance 0 (duplicate point) gives the zero vector.
    """
    neighbors = gather_points(vertices, neighbor_index)
    return F.normalize(neighbors - vertices.unsqueeze(2), dim=-1, eps=1e-12)


def _scale(how: Aggregate, support_num: int) -> float:
    """The factor of the support sum that gives ``how`` (compiled kernel)."""
    return 1.0 if how == "sum" else 1.0 / support_num


def _aggregate(x: torch.Tensor, how: Aggregate) -> torch.Tensor:
    """Reduce the support dimension (-2) of ``(..., S, C)``."""
    return x.sum(dim=-2) if how == "sum" else x.mean(dim=-2)


# On CPU the (points, k, S·C) intermediates are processed in blocks of points so that they stay in
# cache (~3x less CPU time for GPV-Pose's conv_1 at batch 8): at most CPU_BLOCK_ROWS points and about
# CPU_BLOCK_ELEMENTS values (2 MiB of fp32) per block; on GPUs one block holds everything. The size is the fastest
# of benchmarks/gcn3d_block_size.py on the 2-core machine, at 1 and at 2 threads.
CPU_BLOCK_ROWS = 512
CPU_BLOCK_ELEMENTS = 1 << 19
FUSED_RELU_MM = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _blocks(total: int, device: torch.device, row_elements: int = 1) -> list[slice]:
    """Row slices covering ``range(total)`` for rows of ``row_elements`` intermediate values each: CPU
    blocks as above, one block elsewhere and while ``torch.export`` traces (ONNX export: ``total`` is
    then symbolic in the batch size)."""
    if device.type != "cpu" or torch.compiler.is_exporting():
        return [slice(None)]
    step = max(1, min(CPU_BLOCK_ROWS, CPU_BLOCK_ELEMENTS // max(1, row_elements)))
    return [slice(start, start + step) for start in range(0, total, step)]


def _relu_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``relu(a @ b)`` for ``a (..., 3)``, ``b (3, M)``; on CPU without autograd, one oneDNN product with a
    fused ReLU (``mkldnn._linear_pointwise``, the kernel ``torch.compile`` uses; ~25% less time than
    product + ReLU for these K = 3 products), else the two ops."""
    if (FUSED_RELU_MM and a.device.type == "cpu" and not torch.is_grad_enabled() and a.dtype == torch.float32
            and not torch.compiler.is_exporting() and not torch.compiler.is_compiling()):
        return torch.ops.mkldnn._linear_pointwise(a, b.t(), None, "relu", [], "")
    return torch.relu_(a @ b) if not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)) \
        else torch.relu(a @ b)


def _max_per_neighbour(u: torch.Tensor, d: torch.Tensor, support: torch.Tensor | None = None,
                       flat_index: torch.Tensor | None = None) -> torch.Tensor:
    """``max_j ReLU(u_j d) [⊙ support[flat_index_j]]`` one neighbour at a time: ``(R, M)`` intermediates instead of
    ``(R, k, M)``. The exported graph uses this form (``k`` is fixed there, so the loop unrolls): a runtime without
    the compiled kernel then keeps its intermediates ``k`` times smaller (in cache on CPU) at the same values.

    ``u (R, k, 3)``, ``d (3, M)``, ``support (P, M)``, ``flat_index (R, k)`` -> ``(R, M)``."""
    best = None
    for j in range(u.shape[1]):
        v = torch.relu(u[:, j] @ d)
        if support is not None:
            v = v * support.index_select(0, flat_index[:, j])
        best = v if best is None else torch.maximum(best, v)
    return best


def _records_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd records through any of ``tensors`` (training: the compiled kernel with a backward)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _mul_maybe_inplace(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * b``, written into ``a`` when no gradient is being recorded."""
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return a * b
    return a.mul_(b)


class SurfaceConv(nn.Module):
    """3D-GC surface convolution: geometry-only features from neighbour directions.

    Args:
        kernel_num: output channels ``K``.
        support_num: supports per kernel ``S`` (7 in GPV-Pose).
        aggregate: ``"sum"`` over supports (3D-GC, GPV-Pose) or ``"mean"`` (HS-Pose).

    Shapes:
        forward(vertices ``(B, N, 3)``, neighbor_index ``(B, N, k)``) -> ``(B, N, K)``.
    """

    def __init__(self, kernel_num: int, support_num: int = 7, aggregate: Aggregate = "sum") -> None:
        super().__init__()
        self.kernel_num = kernel_num
        self.support_num = support_num
        self.aggregate = aggregate
        self.directions = nn.Parameter(torch.empty(3, support_num * kernel_num))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # U(±1/sqrt(S·K)) as in zhihao-lin/3dgcn (GPV-Pose gcn3d.py Conv_surface.initialize).
        bound = 1.0 / math.sqrt(self.support_num * self.kernel_num)
        nn.init.uniform_(self.directions, -bound, bound)

    def forward(self, vertices: torch.Tensor, neighbor_index: torch.Tensor) -> torch.Tensor:
        B, N, k = neighbor_index.shape
        S, K = self.support_num, self.kernel_num
        u = neighbor_directions(vertices, neighbor_index).reshape(B * N, k, 3)
        d = F.normalize(self.directions, dim=0)
        if native_gcn3d.usable(u, d):
            return native_gcn3d.aggregate(u, d, S, scale=_scale(self.aggregate, S)).view(B, N, K)
        if _records_grad(u, d) and native_gcn3d_grad.usable(u, d):
            return native_gcn3d_grad.aggregate(u, d, S, N, scale=_scale(self.aggregate, S)).view(B, N, K)
        if torch.compiler.is_exporting():
            return _aggregate(_max_per_neighbour(u, d).view(-1, S, K), self.aggregate).view(B, N, K)
        parts = []
        for rows in _blocks(B * N, u.device, k * S * K):  # memory blocks of points, each fully vectorised
            theta = _relu_mm(u[rows], d)
            parts.append(_aggregate(theta.amax(dim=1).view(-1, S, K), self.aggregate))
        return torch.cat(parts).view(B, N, K)

    def extra_repr(self) -> str:
        return f"kernel_num={self.kernel_num}, support_num={self.support_num}, aggregate={self.aggregate}"


class GraphConv(nn.Module):
    """3D-GC graph convolution over a given neighbour index.

    Args:
        in_channels: input feature channels ``Cin``.
        out_channels: output channels ``Cout``.
        support_num: supports per kernel ``S``.
        aggregate: ``"sum"`` (GPV-Pose) or ``"mean"`` (HS-Pose) over supports.

    Shapes:
        forward(vertices ``(B, N, 3)``, features ``(B, N, Cin)``, neighbor_index ``(B, N, k)``)
        -> ``(B, N, Cout)``. ``neighbor_index`` may come from xyz or from feature space (HS-Pose);
        the directions ``u_ij`` always use xyz.
    """

    def __init__(
        self, in_channels: int, out_channels: int, support_num: int = 7, aggregate: Aggregate = "sum"
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.support_num = support_num
        self.aggregate = aggregate
        self.weight = nn.Parameter(torch.empty(in_channels, (support_num + 1) * out_channels))
        self.bias = nn.Parameter(torch.empty((support_num + 1) * out_channels))
        self.directions = nn.Parameter(torch.empty(3, support_num * out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # U(±1/sqrt(Cout·(S+1))) for all three tensors (GPV-Pose gcn3d.py Conv_layer.initialize).
        bound = 1.0 / math.sqrt(self.out_channels * (self.support_num + 1))
        for p in (self.weight, self.bias, self.directions):
            nn.init.uniform_(p, -bound, bound)

    def forward(
        self, vertices: torch.Tensor, features: torch.Tensor, neighbor_index: torch.Tensor
    ) -> torch.Tensor:
        B, N, k = neighbor_index.shape
        S, C = self.support_num, self.out_channels
        u = neighbor_directions(vertices, neighbor_index).reshape(B * N, k, 3)
        d = F.normalize(self.directions, dim=0)
        f = features.reshape(B * N, -1)
        # f W + b as its centre and support column blocks (two products: no copy of the support part)
        center = torch.addmm(self.bias[:C], f, self.weight[:, :C])  # (B*N, C)
        support = torch.addmm(self.bias[C:], f, self.weight[:, C:])  # (B*N, S*C)
        if support.dtype == torch.bfloat16 and u.dtype == torch.float32:  # autocast: the kernels take float32
            support = support.float()
        base = torch.arange(B, device=neighbor_index.device).view(B, 1, 1) * N
        flat_index = (neighbor_index + base).reshape(B * N, k)
        if native_gcn3d.usable(u, d, support) and not _records_grad(center):
            return native_gcn3d.aggregate(u, d, S, support, flat_index, center.float(),
                                          scale=_scale(self.aggregate, S)).view(B, N, C)
        if _records_grad(u, d, support) and native_gcn3d_grad.usable(u, d, support):
            agg = native_gcn3d_grad.aggregate(u, d, S, N, support, flat_index, scale=_scale(self.aggregate, S))
            return (center + agg).view(B, N, C)
        if torch.compiler.is_exporting():
            act = _max_per_neighbour(u, d, support, flat_index).view(-1, S, C)
            return (center + _aggregate(act, self.aggregate)).view(B, N, C)
        parts = []
        for rows in _blocks(B * N, u.device, k * S * C):  # memory blocks of points, each fully vectorised
            theta = _relu_mm(u[rows], d)  # (rows, k, S*C)
            g = support.index_select(0, flat_index[rows].reshape(-1)).view(theta.shape)
            act = _mul_maybe_inplace(theta, g).view(-1, k, S, C).amax(dim=1)  # max over neighbours
            parts.append(_aggregate(act, self.aggregate))
        return (center + torch.cat(parts)).view(B, N, C)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"support_num={self.support_num}, aggregate={self.aggregate}")


class RandomPool(nn.Module):
    """3D-GC pooling: max over the ``neighbor_num`` nearest neighbours, then a random subset.

    The neighbours exclude the point itself, as in the reference (GPV-Pose gcn3d.py Pool_layer takes
    top-(k+1) and drops the first). The subset of ``int(N / rate)`` points is drawn with
    ``torch.randperm`` and shared by the whole batch; pass a ``generator`` for reproducible inference,
    or the subset itself as ``sample`` (the exported ONNX graph takes it as an input, since a random
    draw inside the graph could not be matched against PyTorch).

    Shapes:
        forward(vertices ``(B, N, 3)``, features ``(B, N, C)``, sample ``(N',)`` int64 or None) ->
        (vertices ``(B, N', 3)``, features ``(B, N', C)``, kept indices ``(N',)``), ``N' = int(N / rate)``.
    """

    def __init__(self, rate: int = 4, neighbor_num: int = 4) -> None:
        super().__init__()
        self.rate = rate
        self.neighbor_num = neighbor_num

    def forward(
        self, vertices: torch.Tensor, features: torch.Tensor, generator: torch.Generator | None = None,
        sample: torch.Tensor | None = None, neighbor_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``neighbor_index``: optional ``(B, N, k')`` kNN of ``vertices`` computed by the caller (self
        excluded, nearest first, ``k' >= neighbor_num``; e.g. the graph convolutions' index), whose first
        ``neighbor_num`` columns are the pooling neighbours; None computes them here."""
        N = vertices.shape[1]
        k = min(self.neighbor_num, N - 1)
        if neighbor_index is not None and neighbor_index.shape[-1] >= k:
            idx = neighbor_index[..., :k]
        else:
            idx = knn_indices(vertices, k=k, exclude_self=True)
        if sample is None:
            keep = int(N / self.rate)
            gen_device = generator.device if generator is not None else vertices.device
            sample = torch.randperm(N, generator=generator, device=gen_device)[:keep].to(vertices.device)
        # max over the neighbours of the kept points only (the others' pooled features are never used)
        pooled = gather_points(features, idx[:, sample]).amax(dim=2)
        return vertices[:, sample], pooled, sample

    def extra_repr(self) -> str:
        return f"rate={self.rate}, neighbor_num={self.neighbor_num}"


def upsample_nearest(
    target_vertices: torch.Tensor, source_vertices: torch.Tensor, source_features: torch.Tensor
) -> torch.Tensor:
    """Propagate features to every target point from its nearest source point.

    Args:
        target_vertices: ``(B, N, 3)`` (all points).
        source_vertices: ``(B, M, 3)`` (pooled points).
        source_features: ``(B, M, C)``.

    Returns:
        ``(B, N, C)``.
    """
    return gather_points(source_features, nearest_indices(target_vertices, source_vertices))
