"""PointNet++ operators in pure, batched torch: FPS, ball query, grouping, set abstraction (multi-scale
grouping) and feature propagation.

Qi, Yi, Su, Guibas, "PointNet++: Deep Hierarchical Feature Learning on Point Sets in a Metric Space",
NeurIPS 2017. The operator semantics follow the widely used CUDA extension (E. Wijmans,
``pointnet2_ops``) that AG-Pose / CleanPose build on (notes/cleanpose.md §1.4), re-derived here:

- farthest point sampling starts at point 0 (:func:`demopose.geometry.sampling.farthest_point_sample`);
- ball query returns, per centre, the first ``nsample`` points *in index order* whose squared distance
  is strictly below ``radius**2``; missing slots repeat the first one found (0 when none is found);
- grouping subtracts the centre from the neighbours' xyz and concatenates ``[xyz; features]``
  (``use_xyz``);
- feature propagation interpolates with inverse-distance weights ``1 / (d + 1e-8)`` over the 3
  nearest known points (Euclidean ``d``), normalised to sum 1.

Tensors are channel-last: points ``(B, N, 3)`` in metres, features ``(B, N, C)``. There are no
Python loops over points (FPS iterates over the ``M`` picks, ball query over memory blocks of centres).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from demopose._checks import check_shape
from demopose.geometry import sampling
from demopose.layers.knn import gather_points, knn_indices
from demopose.layers.mlp import PointMLP
from demopose.native import pointnet2 as native_pointnet2

__all__ = [
    "FeaturePropagation",
    "PointNet2MSG",
    "SetAbstractionMSG",
    "ball_query",
    "farthest_point_sample",
    "group_points",
    "three_interpolate",
]

_MAX_BLOCK = 1 << 24  # elements of one (B, m, N) distance block


def farthest_point_sample(points: torch.Tensor, k: int, start: int = 0) -> torch.Tensor:
    """:func:`demopose.geometry.sampling.farthest_point_sample` (same picks), batched ``(B, N, 3)`` CPU float32
    points through the compiled kernel (:mod:`demopose.native.pointnet2`)."""
    if points.dim() == 3 and 1 <= int(k) <= points.shape[1] and 0 <= start < points.shape[1] \
            and native_pointnet2.usable(points):
        return native_pointnet2.farthest_point_sample(points, int(k), start)
    return sampling.farthest_point_sample(points, k, start)


def ball_query(xyz: torch.Tensor, centres: torch.Tensor, radius: float, nsample: int) -> torch.Tensor:
    """Indices of up to ``nsample`` points within ``radius`` of every centre.

    Args:
        xyz: ``(B, N, 3)`` points, metres.
        centres: ``(B, M, 3)`` query centres, metres.
        radius: ball radius (strict: ``|p - c|^2 < radius^2``).
        nsample: slots per centre.

    Returns:
        ``(B, M, nsample)`` int64 indices into ``N``: the in-ball points in increasing index order;
        empty slots repeat the first in-ball index (0 when the ball is empty).
    """
    dims = check_shape(xyz, "B N 3", "xyz")
    check_shape(centres, "B M 3", "centres", dims)
    if nsample < 1 or radius <= 0:
        raise ValueError(f"ball_query: expected nsample >= 1 and radius > 0, got {nsample}, {radius}")
    if native_pointnet2.usable(xyz, centres):
        return native_pointnet2.ball_query(xyz, centres, radius, nsample)
    B, N, _ = xyz.shape
    M = centres.shape[1]
    k = min(nsample, N)
    ar = torch.arange(N, device=xyz.device)
    chunk = max(1, _MAX_BLOCK // max(1, B * N))
    out = []
    with torch.no_grad():
        p, c = xyz.detach(), centres.detach()
        for s in range(0, M, chunk):  # memory blocks of centres
            d2 = ((c[:, s : s + chunk, None, :] - p[:, None, :, :]) ** 2).sum(-1)  # (B, m, N)
            idx = torch.where(d2 < radius * radius, ar, N)
            idx = torch.topk(idx, k, dim=-1, largest=False, sorted=True).values  # first k in index order
            first = idx[..., :1]
            first = torch.where(first == N, torch.zeros_like(first), first)
            idx = torch.where(idx == N, first, idx)
            out.append(idx)
    idx = out[0] if len(out) == 1 else torch.cat(out, dim=1)
    if k < nsample:
        idx = torch.cat([idx, idx[..., :1].expand(B, M, nsample - k)], dim=-1)
    return idx


def group_points(xyz: torch.Tensor, centres: torch.Tensor, index: torch.Tensor,
                 features: torch.Tensor | None = None, use_xyz: bool = True) -> torch.Tensor:
    """Gather neighbourhoods: ``[xyz - centre; features]`` per neighbour.

    Args:
        xyz: ``(B, N, 3)``; centres: ``(B, M, 3)``; index: ``(B, M, K)`` into ``N``.
        features: ``(B, N, C)`` or None.
        use_xyz: include the relative coordinates (always when ``features`` is None).

    Returns:
        ``(B, M, K, 3 + C)`` (or ``(B, M, K, C)`` without xyz).
    """
    parts = []
    if use_xyz or features is None:
        parts.append(gather_points(xyz, index) - centres.unsqueeze(2))
    if features is not None:
        parts.append(gather_points(features, index))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def three_interpolate(unknown: torch.Tensor, known: torch.Tensor, known_feats: torch.Tensor,
                      k: int = 3) -> torch.Tensor:
    """Inverse-distance interpolation from the ``k`` nearest known points.

    Args:
        unknown: ``(B, N, 3)`` target points; known: ``(B, M, 3)`` source points.
        known_feats: ``(B, M, C)``.

    Returns:
        ``(B, N, C)``: ``sum_j w_j f_j`` with ``w_j ∝ 1 / (|u - k_j| + 1e-8)``.
    """
    dims = check_shape(unknown, "B N 3", "unknown")
    check_shape(known, "B M 3", "known", dims)
    check_shape(known_feats, "B M C", "known_feats", dims)
    k = min(k, known.shape[1])
    idx = knn_indices(unknown, known, k=k)  # (B, N, k)
    d = (gather_points(known, idx) - unknown.unsqueeze(2)).norm(dim=-1)  # (B, N, k)
    w = 1.0 / (d + 1e-8)
    w = w / w.sum(dim=-1, keepdim=True)
    return (gather_points(known_feats, idx) * w.unsqueeze(-1)).sum(dim=2)


class SetAbstractionMSG(nn.Module):
    """Multi-scale-grouping set abstraction: FPS centres, one ball query + shared MLP + max-pool per
    scale, concatenated.

    Args:
        npoint: centres (FPS picks; all points kept if ``npoint >= N``).
        radii, nsamples: one per scale (metres, slots).
        mlps: per scale the MLP widths (input ``3 + in_channels`` is implied).
        in_channels: feature channels of the input points (0: xyz only).

    Shapes:
        ``xyz (B, N, 3), features (B, N, C) | None -> new_xyz (B, npoint, 3), new_features
        (B, npoint, sum(mlp[-1]))``.
    """

    def __init__(self, npoint: int, radii: Sequence[float], nsamples: Sequence[int],
                 mlps: Sequence[Sequence[int]], in_channels: int = 0) -> None:
        super().__init__()
        if not len(radii) == len(nsamples) == len(mlps):
            raise ValueError("SetAbstractionMSG: radii, nsamples and mlps need one entry per scale")
        self.npoint, self.radii, self.nsamples = int(npoint), tuple(radii), tuple(nsamples)
        self.mlps = nn.ModuleList(PointMLP(in_channels + 3, tuple(m)) for m in mlps)
        self.out_channels = sum(m[-1] for m in mlps)

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None = None):
        n = xyz.shape[1]
        if self.npoint >= n:
            new_xyz = xyz
        else:
            new_xyz = gather_points(xyz, farthest_point_sample(xyz, self.npoint))
        outs = []
        for r, k, mlp in zip(self.radii, self.nsamples, self.mlps):
            idx = ball_query(xyz, new_xyz, r, k)
            g = group_points(xyz, new_xyz, idx, features)  # (B, M, K, 3 + C)
            outs.append(mlp(g).amax(dim=2))
        return new_xyz, torch.cat(outs, dim=-1)


class FeaturePropagation(nn.Module):
    """Feature propagation: interpolate coarse features to the fine points, concatenate the fine
    level's skip features, shared MLP. ``(B, N, 3), (B, M, 3), (B, N, Cs) | None, (B, M, C) ->
    (B, N, mlp[-1])``; input width ``C + Cs``."""

    def __init__(self, in_channels: int, mlp: Sequence[int]) -> None:
        super().__init__()
        self.mlp = PointMLP(in_channels, tuple(mlp))
        self.out_channels = mlp[-1]

    def forward(self, unknown: torch.Tensor, known: torch.Tensor, unknown_feats: torch.Tensor | None,
                known_feats: torch.Tensor) -> torch.Tensor:
        f = three_interpolate(unknown, known, known_feats)
        if unknown_feats is not None:
            f = torch.cat([f, unknown_feats], dim=-1)
        return self.mlp(f)


class PointNet2MSG(nn.Module):
    """PointNet++ MSG encoder-decoder giving a per-point feature (AG-Pose's point branch).

    Defaults are AG-Pose / CleanPose's (notes/cleanpose.md §1.4): 4 SA levels (512, 256, 128, 64
    centres; radii 0.01/0.02, 0.02/0.04, 0.04/0.08, 0.08/0.16 m; 16/32 samples; per-scale MLPs
    [16,16,32], [32,32,64], [64,64,128], [128,128,256]) and 4 FP levels ([512,512], [256,256],
    [256,256], [128,128]) back to every input point.

    Shapes:
        ``xyz (B, N, 3)`` metres (centred) -> ``(B, N, fp_mlps[-1][-1])``.
    """

    def __init__(self, npoints: Sequence[int] = (512, 256, 128, 64),
                 radii: Sequence[Sequence[float]] = ((0.01, 0.02), (0.02, 0.04), (0.04, 0.08), (0.08, 0.16)),
                 nsamples: Sequence[Sequence[int]] = ((16, 32),) * 4,
                 sa_mlps: Sequence[Sequence[Sequence[int]]] = (
                     ((16, 16, 32), (16, 16, 32)), ((32, 32, 64), (32, 32, 64)),
                     ((64, 64, 128), (64, 64, 128)), ((128, 128, 256), (128, 128, 256))),
                 fp_mlps: Sequence[Sequence[int]] = ((512, 512), (256, 256), (256, 256), (128, 128))) -> None:
        super().__init__()
        if not len(npoints) == len(radii) == len(nsamples) == len(sa_mlps) == len(fp_mlps):
            raise ValueError("PointNet2MSG: npoints, radii, nsamples, sa_mlps and fp_mlps need one entry per level")
        self.sa = nn.ModuleList()
        skip = [0]
        c = 0
        for npt, r, ns, m in zip(npoints, radii, nsamples, sa_mlps):
            layer = SetAbstractionMSG(npt, r, ns, m, c)
            self.sa.append(layer)
            c = layer.out_channels
            skip.append(c)
        self.fp = nn.ModuleList()
        # fp[0] maps level L -> L-1 (deepest first)
        for i, m in enumerate(fp_mlps):
            level = len(npoints) - 1 - i  # the fine level receiving features
            self.fp.append(FeaturePropagation(c + skip[level], m))
            c = m[-1]
        self.out_channels = c

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        check_shape(xyz, "B N 3", "xyz")
        xyzs, feats = [xyz], [None]
        for sa in self.sa:
            x, f = sa(xyzs[-1], feats[-1])
            xyzs.append(x)
            feats.append(f)
        f = feats[-1]
        for i, fp in enumerate(self.fp):
            level = len(self.sa) - 1 - i
            f = fp(xyzs[level], xyzs[level + 1], feats[level], f)
        return f
