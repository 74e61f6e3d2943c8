"""Bilinear sampling of an image feature map at point pixels (DeMo-Pose's RGB–depth bridge).

Convention:
    ``pixels`` are ``(u, v)`` in the pixel coordinates of the *input image* of size ``image_size``
    (OpenCV convention: integer coordinates are pixel centres, so the image spans
    ``[-0.5, W - 0.5]``). A feature map of size ``(h, w)`` that covers the same image (stride
    ``W / w``) has its cell ``(i, j)`` centred at image pixel ``((j + 0.5) · W / w − 0.5,
    (i + 0.5) · H / h − 0.5)``. Sampling therefore maps ``u -> (u + 0.5) · w / W − 0.5`` in feature
    cells, then interpolates bilinearly between the four neighbouring cell centres, clamping at the
    border (``align_corners=False`` semantics of ``grid_sample`` with border padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from demopose._checks import check_shape

__all__ = ["sample_feature_map"]


def sample_feature_map(features: torch.Tensor, pixels: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Sample ``features (B, C, h, w)`` at ``pixels (B, N, 2)`` of an image of ``image_size = (H, W)``.

    Returns:
        ``(B, N, C)`` bilinearly interpolated features (border-clamped).
    """
    dims = check_shape(features, "B C h w", "features")
    check_shape(pixels, "B N 2", "pixels", dims)
    H, W = image_size
    # normalised coordinates in [-1, 1] with align_corners=False: x_n = (u + 0.5) / W * 2 - 1
    grid = torch.stack([(pixels[..., 0] + 0.5) / W * 2 - 1, (pixels[..., 1] + 0.5) / H * 2 - 1], dim=-1)
    out = F.grid_sample(features, grid.to(features.dtype)[:, :, None, :], mode="bilinear",
                        padding_mode="border", align_corners=False)  # (B, C, N, 1)
    return out[..., 0].transpose(1, 2)
