"""Path Aggregation necks of the monocular detector (notes/monocular.md §1.3).

* :class:`PAN` — NanoDet v0.x (RangiLyu/nanodet ``fpn/pan.py``): a 1×1 lateral conv per level to
  ``C`` channels, a top-down pass (bilinear ×2 upsampling, addition) and a bottom-up pass (bilinear
  ×0.5 downsampling, addition). No 3×3 convs; as many outputs as inputs.
* :class:`GhostPAN` — NanoDet-Plus (``fpn/ghost_pan.py``): 1×1 conv + BN + LeakyReLU reduction to
  ``C``, top-down (upsample, concat, Ghost block), bottom-up (depthwise-separable k5 stride-2 conv,
  concat, Ghost block), plus ``num_extra_level`` stride-doubling levels (``P6 = DWSep(top input) +
  DWSep(last output)``).

Both map a list of ``(B, C_i, H/s_i, W/s_i)`` backbone features (finest first) to a list of
``(B, C, H/s_i, W/s_i)``. The input H and W must be multiples of the coarsest input stride.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from demopose.models.ghostnet import GhostBottleneck

__all__ = ["PAN", "DepthwiseSeparableConv", "GhostBlock", "GhostPAN", "build_neck"]


class PAN(nn.Module):
    """NanoDet's light PAN (see module docstring)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 96) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.num_extra_level = 0
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        for m in self.lateral_convs:
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.lateral_convs):
            raise ValueError(f"PAN: expected {len(self.lateral_convs)} feature maps, got {len(feats)}")
        lat = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(lat) - 1, 0, -1):  # top-down
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="bilinear",
                                                    align_corners=False)
        outs = list(lat)
        for i in range(len(outs) - 1):  # bottom-up
            outs[i + 1] = outs[i + 1] + F.interpolate(outs[i], size=outs[i + 1].shape[-2:], mode="bilinear",
                                                      align_corners=False)
        return outs


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k×k (stride s) + BN + LeakyReLU, then pointwise 1×1 + BN + LeakyReLU."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 5, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_chs, in_chs, kernel_size, stride, kernel_size // 2, groups=in_chs, bias=False)
        self.dwnorm = nn.BatchNorm2d(in_chs)
        self.pointwise = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.pwnorm = nn.BatchNorm2d(out_chs)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pwnorm(self.pointwise(self.act(self.dwnorm(self.depthwise(x))))))


class GhostBlock(nn.Module):
    """NanoDet-Plus Ghost block: ``num_blocks`` Ghost bottlenecks (in -> ``out`` with ``mid = out``,
    depthwise kernel 5 in the projection shortcut), no extra residual."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 5, num_blocks: int = 1) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[GhostBottleneck(in_chs if i == 0 else out_chs, out_chs, out_chs,
                                                      kernel_size, 1, act="leaky_relu") for i in range(num_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class GhostPAN(nn.Module):
    """NanoDet-Plus Ghost-PAN (see module docstring); ``len(in_channels) + num_extra_level`` outputs."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 96, kernel_size: int = 5,
                 num_extra_level: int = 1, num_blocks: int = 1) -> None:
        super().__init__()
        c = out_channels
        self.out_channels = c
        self.num_extra_level = num_extra_level
        n = len(in_channels)
        self.reduce_layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ci, c, 1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.1, inplace=True))
            for ci in in_channels)
        self.top_down_blocks = nn.ModuleList(GhostBlock(2 * c, c, kernel_size, num_blocks) for _ in range(n - 1))
        self.downsamples = nn.ModuleList(DepthwiseSeparableConv(c, c, kernel_size, 2) for _ in range(n - 1))
        self.bottom_up_blocks = nn.ModuleList(GhostBlock(2 * c, c, kernel_size, num_blocks) for _ in range(n - 1))
        self.extra_in = nn.ModuleList(DepthwiseSeparableConv(c, c, kernel_size, 2) for _ in range(num_extra_level))
        self.extra_out = nn.ModuleList(DepthwiseSeparableConv(c, c, kernel_size, 2) for _ in range(num_extra_level))

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.reduce_layers):
            raise ValueError(f"GhostPAN: expected {len(self.reduce_layers)} feature maps, got {len(feats)}")
        x = [r(f) for r, f in zip(self.reduce_layers, feats)]
        n = len(x)
        inner = [x[-1]]
        for i in range(n - 1, 0, -1):  # top-down: coarse -> fine
            up = F.interpolate(inner[0], size=x[i - 1].shape[-2:], mode="bilinear", align_corners=False)
            inner.insert(0, self.top_down_blocks[n - 1 - i](torch.cat([up, x[i - 1]], 1)))
        outs = [inner[0]]
        for i in range(n - 1):  # bottom-up: fine -> coarse
            down = self.downsamples[i](outs[-1])
            outs.append(self.bottom_up_blocks[i](torch.cat([down, inner[i + 1]], 1)))
        top_in, top_out = x[-1], outs[-1]
        for ein, eout in zip(self.extra_in, self.extra_out):
            top_in, top_out = ein(top_in), eout(top_out)
            outs.append(top_in + top_out)
        return outs


def build_neck(kind: str, in_channels: Sequence[int], out_channels: int, num_extra_level: int = 1) -> nn.Module:
    """``kind``: ``pan`` (NanoDet) or ``ghost_pan`` (NanoDet-Plus, ``num_extra_level`` extra levels)."""
    if kind == "pan":
        return PAN(in_channels, out_channels)
    if kind == "ghost_pan":
        return GhostPAN(in_channels, out_channels, num_extra_level=num_extra_level)
    raise ValueError(f"neck: expected 'pan' or 'ghost_pan', got {kind!r}")
