"""Pluggable RGB encoders for point-wise RGB features, and the sampler at the points' pixels.

Interface (any ``nn.Module``): ``encoder(rgb) -> feature map`` with ``rgb (B, 3, S, S)`` the instance
crop in [0, 1] (:func:`demopose.data.instances.crop_rgb`) and output ``(B, C, h, w)`` covering the
same crop, plus an ``out_channels = C`` attribute. The pose model samples the map at each point's crop
pixel (:func:`sample_at_pixels`) and projects ``C`` to its width, so any dense map fits: the light
:class:`CropCNN` (default, offline, trained from scratch), :class:`~demopose.models.dinov2.DINOv2`
(CleanPose's frozen ViT-S/14), or later the project's monocular feature map (wrap it so that it returns
the crop's map). Frozen encoders keep themselves in eval mode.

Sampling the coarse map bilinearly at the pixel equals CleanPose's "upsample to S x S, then gather at
``choose``" up to the interpolation of the upsampling, at a fraction of the memory (notes §1.3).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from demopose._checks import check_shape

__all__ = ["CropCNN", "build_rgb_encoder", "sample_at_pixels"]


class CropCNN(nn.Module):
    """Small stride-8 CNN: 4 stages of Conv3x3-BN-ReLU (widths ``channels``; the first three stride 2).

    ``(B, 3, S, S)`` in [0, 1] -> ``(B, channels[-1], S/8, S/8)``.
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 128)) -> None:
        super().__init__()
        layers, c = [], 3
        for i, w in enumerate(channels):
            layers += [nn.Conv2d(c, w, 3, 2 if i < 3 else 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.net = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.net(rgb * 2 - 1)


def sample_at_pixels(fmap: torch.Tensor, pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear features at crop pixels.

    Args:
        fmap: ``(B, C, h, w)`` covering the ``size x size`` crop.
        pixels: ``(B, N, 2)`` (u, v) crop pixel coordinates (pixel centres at integers).

    Returns:
        ``(B, N, C)``.
    """
    dims = check_shape(fmap, "B C h w", "fmap")
    check_shape(pixels, "B N 2", "pixels", dims)
    grid = ((pixels + 0.5) / size * 2 - 1).unsqueeze(1).to(fmap.dtype)  # (B, 1, N, 2), align_corners=False
    out = F.grid_sample(fmap, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, 0].transpose(1, 2)


def build_rgb_encoder(name: str, checkpoint: str | Path | None = None, **kwargs) -> nn.Module:
    """``cnn`` (:class:`CropCNN`) | ``dinov2_vits14`` (:class:`~demopose.models.dinov2.DINOv2`, frozen,
    loaded from ``checkpoint`` when given) | ``dinov2_tiny`` (a 2-block 64-wide ViT for tests)."""
    if name == "cnn":
        return CropCNN(**kwargs)
    if name in ("dinov2_vits14", "dinov2_tiny"):
        from demopose.models.dinov2 import DINOv2

        if name == "dinov2_tiny":
            kwargs = {"dim": 64, "depth": 2, "heads": 2, "grid": 16, **kwargs}
        return DINOv2(checkpoint=checkpoint, **kwargs)
    raise ValueError(f"rgb_encoder: expected 'cnn', 'dinov2_vits14' or 'dinov2_tiny', got {name!r}")
