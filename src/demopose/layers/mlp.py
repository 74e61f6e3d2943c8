"""Point-wise MLPs (shared Linear + BatchNorm + ReLU over points) and a max-pooled vector head.

Tensors are channel-last, ``(B, N, C)``. A shared ``nn.Linear`` equals the reference code's 1x1
``Conv1d`` and BatchNorm over the flattened ``(B·N, C)`` rows equals ``BatchNorm1d`` over
``(B, C, N)``; the channel-last form avoids transposes and the slow CPU backward of 1x1 convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["PointMLP", "PooledVectorHead"]


class PointMLP(nn.Module):
    """Shared per-point MLP: ``Linear -> BN -> ReLU`` for every width.

    Args:
        in_channels: input channels.
        channels: output width of each layer.
        last_act: apply BN + ReLU after the last layer too (``False``: plain linear output).

    Shapes:
        ``(B, N, Cin) -> (B, N, channels[-1])`` (or ``(B, Cin) -> (B, C)``).
    """

    def __init__(self, in_channels: int, channels: Sequence[int], last_act: bool = True) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        n_norm = len(channels) if last_act else len(channels) - 1
        self.norms = nn.ModuleList(nn.BatchNorm1d(c) for c in channels[:n_norm])
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        return self.forward_from_first(self.linears[0](x)).view(*shape, -1)

    def forward_from_first(self, z: torch.Tensor) -> torch.Tensor:
        """The layers after the first product: ``z (rows, channels[0])``, the first linear layer's output
        computed elsewhere (e.g. split by input, :mod:`demopose.models.gpv_fast`) -> ``(rows, channels[-1])``."""
        x = z
        for i in range(len(self.linears)):
            if i > 0:
                x = self.linears[i](x)
            if i < len(self.norms):
                x = torch.relu(self.norms[i](x))
        return x


class PooledVectorHead(nn.Module):
    """Per-point MLP, max over points, then ``FC -> BN -> ReLU -> Dropout -> FC`` (GPV-Pose heads).

    The layout of GPV-Pose's ``Rot_green`` / ``Rot_red`` / ``Pose_Ts`` (lolrudy/GPV_Pose :
    network/fs_net_repo/PoseR.py, PoseTs.py): per-point ``Cin -> 1024 -> 256`` (BN, ReLU), max-pool,
    ``256 -> 256`` (BN, ReLU), dropout 0.2, ``256 -> out``.

    Shapes:
        ``(B, N, Cin) -> (B, out_channels)``. Training with BatchNorm needs ``B >= 2``.
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
        self.fc = PointMLP(self.point_mlp.out_channels, (fc_channels,))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(fc_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.fc(self.point_mlp(x).amax(dim=1))))

    def forward_from_first(self, z: torch.Tensor, batch: int) -> torch.Tensor:
        """:meth:`forward` from the first per-point layer's output ``z (B·N, point_channels[0])`` -> ``(B, out)``."""
        per_point = self.point_mlp.forward_from_first(z)
        return self.out(self.dropout(self.fc(per_point.view(batch, -1, per_point.shape[-1]).amax(dim=1))))
