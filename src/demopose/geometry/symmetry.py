"""Helpers for categories with continuous symmetry about the object y axis (bottle, bowl, can, ...).

Convention: a y-symmetric object looks the same under ``R @ Ry(θ)`` for every θ, so its rotation is
defined only up to that; the *canonical* representative is the one closest to the identity.
"""

from __future__ import annotations

import math

import torch

from demopose.geometry._backend import numpy_compatible
from demopose.geometry.rotation import rotation_about_axis

__all__ = ["canonicalize_y_symmetric", "y_symmetric_candidates"]


@numpy_compatible
def canonicalize_y_symmetric(R: torch.Tensor) -> torch.Tensor:
    """Remove the free rotation about the object y axis: ``R @ Ry(θ*)`` maximising ``tr(R Ry(θ))``.

    ``tr(R Ry(θ)) = cos θ (R00 + R22) + sin θ (R20 − R02) + R11`` peaks at
    ``θ* = atan2(R20 − R02, R00 + R22)``. The y column is unchanged, and two rotations that differ only
    about y map to the same matrix. ``R (*, 3, 3)`` -> ``(*, 3, 3)``.
    """
    theta = torch.atan2(R[..., 2, 0] - R[..., 0, 2], R[..., 0, 0] + R[..., 2, 2])
    return R @ rotation_about_axis(theta, "y").to(R.dtype)


@numpy_compatible
def y_symmetric_candidates(R: torch.Tensor, n: int = 20) -> torch.Tensor:
    """``R (*, 3, 3)`` -> ``(*, n, 3, 3)``: ``R @ Ry(2πi/n)`` for ``i = 0..n-1`` (NOCS IoU search)."""
    angles = torch.arange(n, dtype=R.dtype, device=R.device) * (2 * math.pi / n)
    return R[..., None, :, :] @ rotation_about_axis(angles, "y").to(R.dtype)
