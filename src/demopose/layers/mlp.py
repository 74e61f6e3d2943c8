"""Point-wise MLPs (1x1 Conv1d + BatchNorm + ReLU) and a max-pooled vector head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["PointMLP", "PooledVectorHead"]


class PointMLP(nn.Sequential):
    """Shared per-point MLP: ``Conv1d(1x1) -> BN -> ReLU`` for every hidden width.

    Args:
        in_channels: input channels.
        channels: output width of each layer.
        last_act: apply BN + ReLU after the last layer too (``False``: plain linear output).

    Shapes:
        ``(B, Cin, N) -> (B, channels[-1], N)``.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], last_act: bool = True) -> None:
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(channels):
            layers.append(nn.Conv1d(c, w, 1))
            if last_act or i < len(channels) - 1:
                layers += [nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
            c = w
        super().__init__(*layers)
        self.out_channels = c


class PooledVectorHead(nn.Module):
    """Per-point MLP, max over points, then ``FC -> BN -> ReLU -> Dropout -> FC`` (GPV-Pose heads).

    The layout of GPV-Pose's ``Rot_green`` / ``Rot_red`` / ``Pose_Ts`` (lolrudy/GPV_Pose :
    network/fs_net_repo/PoseR.py, PoseTs.py): 1x1 convs ``Cin -> 1024 -> 256`` (BN, ReLU), max-pool,
    ``256 -> 256`` (BN, ReLU), dropout 0.2, ``256 -> out``.

    Shapes:
        ``(B, Cin, N) -> (B, out_channels)``. Training with BatchNorm needs ``B >= 2``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        point_channels: Sequence[int] = (1024, 256),
        fc_channels: int = 256,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.point_mlp = PointMLP(in_channels, point_channels)
        self.fc = nn.Sequential(
            nn.Linear(self.point_mlp.out_channels, fc_channels),
            nn.BatchNorm1d(fc_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_channels, out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.point_mlp(x).amax(dim=-1))
