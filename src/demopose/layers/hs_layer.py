"""HS-Pose hybrid-scope feature layers (a drop-in replacement for the 3D-GC layers).

Zheng, Wang, Sun, Navab, Busam, Tombari et al., "HS-Pose: Hybrid Scope Feature Extraction for
Category-level Object Pose Estimation", CVPR 2023 (Lynne-Zheng-Linfang/HS-Pose :
network/fs_net_repo/gcn3d.py; notes/depth_and_eval.md §2). Deltas w.r.t. 3D-GC:

* supports are aggregated by a **mean** instead of a sum;
* **RF-F**: the graph layer's neighbour set is the kNN in the *input feature* space (directions
  ``u_ij`` still from xyz); the surface layer keeps the xyz kNN (RF-P);
* **STE** (scale/translation encoding): a bias-free 1x1 projection of the layer input (xyz for the
  surface layer) is added to the output;
* **ORL** (outlier-robust layer): per point max of the output over its xyz kNN, mean over all points,
  broadcast, concatenated to the per-point output, bias-free 1x1 projection ``2C -> C``, residual add.
"""

from __future__ import annotations

import torch
from torch import nn

from demopose.layers.gcn3d import GraphConv, SurfaceConv
from demopose.layers.knn import gather_points, knn_indices

__all__ = ["HSLayer", "HSSurfaceLayer", "OutlierRobustGlobal"]


class OutlierRobustGlobal(nn.Module):
    """ORL: ``f + W [f, mean_i max_{j∈kNN(i)} f_j]`` with a bias-free ``W: 2C -> C``.

    Shapes:
        forward(features ``(B, N, C)``, xyz neighbour index ``(B, N, k)``) -> ``(B, N, C)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * channels, channels, bias=False)

    def forward(self, features: torch.Tensor, neighbor_index: torch.Tensor) -> torch.Tensor:
        local_max = gather_points(features, neighbor_index).amax(dim=2)  # (B, N, C)
        glob = local_max.mean(dim=1, keepdim=True).expand_as(features)
        return features + self.proj(torch.cat([features, glob], dim=-1))


class HSSurfaceLayer(nn.Module):
    """HS-Pose first layer: mean-aggregated surface conv on the xyz kNN + ORL + STE(xyz).

    Shapes:
        forward(vertices ``(B, N, 3)``, xyz neighbour index ``(B, N, k)``) -> ``(B, N, K)``.
    """

    def __init__(self, kernel_num: int, support_num: int = 7) -> None:
        super().__init__()
        self.conv = SurfaceConv(kernel_num, support_num, aggregate="mean")
        self.orl = OutlierRobustGlobal(kernel_num)
        self.ste = nn.Linear(3, kernel_num, bias=False)

    def forward(self, vertices: torch.Tensor, neighbor_index: torch.Tensor) -> torch.Tensor:
        feature = self.orl(self.conv(vertices, neighbor_index), neighbor_index)
        return feature + self.ste(vertices)


class HSLayer(nn.Module):
    """HS-Pose graph layer: mean-aggregated graph conv on the feature-space kNN + ORL + STE.

    The feature-space neighbourhood has the same size ``k`` as the xyz one passed in and excludes the
    point itself (HS-Pose ``get_receptive_fields(mode='RF-F')``).

    Shapes:
        forward(vertices ``(B, N, 3)``, features ``(B, N, Cin)``, xyz neighbour index ``(B, N, k)``)
        -> ``(B, N, Cout)``.
    """

    def __init__(self, in_channels: int, out_channels: int, support_num: int = 7) -> None:
        super().__init__()
        self.conv = GraphConv(in_channels, out_channels, support_num, aggregate="mean")
        self.orl = OutlierRobustGlobal(out_channels)
        self.ste = nn.Linear(in_channels, out_channels, bias=False)

    def forward(
        self, vertices: torch.Tensor, features: torch.Tensor, neighbor_index: torch.Tensor
    ) -> torch.Tensor:
        feat_index = knn_indices(features, k=neighbor_index.shape[-1], exclude_self=True)
        out = self.orl(self.conv(vertices, features, feat_index), neighbor_index)
        return out + self.ste(features)
