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

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from demopose._checks import check_shape

__all__ = ["check_frame_inputs", "sample_feature_map", "sample_point_features"]


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


def sample_point_features(feats: Sequence[torch.Tensor], image_pixels: torch.Tensor,
                          image_index: torch.Tensor | None, image_size: tuple[int, int]) -> torch.Tensor:
    """DeMo-Pose's per-point image features: every feature map ``(F, C, h, w)`` of ``feats`` bilinearly sampled
    at ``image_pixels (B, N, 2)`` (pixels of the ``image_size = (H_in, W_in)`` input) of frame ``image_index (B,)``
    (default ``arange(B)``), concatenated: ``(B, N, sum C)``."""
    dev = feats[0].device
    if image_index is None:
        image_index = torch.arange(image_pixels.shape[0])
    image_index = image_index.to(dev).long().reshape(-1)
    out = [sample_feature_map(f[image_index], image_pixels.to(dev, f.dtype), image_size) for f in feats]
    return torch.cat(out, dim=-1)


def check_frame_inputs(images: torch.Tensor | None, image_pixels: torch.Tensor, image_index: torch.Tensor | None,
                       features: Mapping[int, torch.Tensor] | None, levels: Sequence[int],
                       input_size: tuple[int, int], strides: Sequence[int] | None = None) -> None:
    """Check DeMo-Pose's frame inputs: ``images (F, 3, H_in, W_in)`` of ``input_size = (W_in, H_in)``, or the
    detector's ``features`` (``{level: (F, C, h, w)}``, every one of ``levels``, each ``h = ceil(H_in / stride)``,
    ``w = ceil(W_in / stride)`` when ``strides`` (per level) are given); ``image_index (B,)`` is required unless
    each instance has its own frame (``F == B``)."""
    W, H = int(input_size[0]), int(input_size[1])
    if features is None:
        if images is None:
            raise KeyError("batch: needs 'image' (F, 3, H_in, W_in) or the detector's 'image_features'")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"batch['image']: expected (F, 3, H_in, W_in), got {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != (H, W):
            raise ValueError(f"batch['image']: size {images.shape[-1]}x{images.shape[-2]} differs from the "
                             f"detector's input {(W, H)}")
        n_frames = images.shape[0]
    else:
        missing = [lv for lv in levels if lv not in features]
        if missing:
            raise ValueError(f"batch['image_features']: levels {missing} missing (has {sorted(features)})")
        for lv in levels if strides is not None else ():
            want = (math.ceil(H / strides[lv]), math.ceil(W / strides[lv]))
            if tuple(features[lv].shape[-2:]) != want:
                raise ValueError(f"batch['image_features'][{lv}]: a {tuple(features[lv].shape[-2:])} map, expected "
                                 f"{want} (stride {strides[lv]} of the {W}x{H} detector input): features of "
                                 f"another detector or input size?")
        n_frames = features[levels[0]].shape[0]
    if image_index is None and n_frames != image_pixels.shape[0]:
        raise ValueError("batch['image_index'] is required when instances share frames")
