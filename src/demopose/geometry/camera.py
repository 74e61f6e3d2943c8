"""Pinhole camera: intrinsics, projection, back-projection, depth -> point cloud.

Convention:
    OpenCV camera frame (x right, y down, z forward), metres. Pixel ``(u, v)``: ``u`` is the column,
    ``v`` the row; the centre of pixel ``(i, j)`` (row, column) is at ``(u, v) = (j, i)`` (integer
    coordinates are pixel centres, as in OpenCV). ``K`` is ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from demopose._checks import check_shape
from demopose.geometry._backend import numpy_compatible

__all__ = [
    "CAMERA_INTRINSICS",
    "REAL_INTRINSICS",
    "Intrinsics",
    "backproject_pixels",
    "depth_to_points",
    "project_points",
]


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, with the image size they belong to."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 640
    height: int = 480

    @property
    def K(self) -> np.ndarray:
        """``(3, 3)`` float64 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_matrix(cls, K: np.ndarray, width: int = 640, height: int = 480) -> Intrinsics:
        """Read fx, fy, cx, cy from a ``(3, 3)`` matrix (skew must be zero)."""
        K = np.asarray(K, dtype=np.float64)
        check_shape(K, "3 3", "K")
        if abs(K[0, 1]) > 1e-9 or not np.allclose(K[2], [0, 0, 1]):
            raise ValueError(f"K: expected [[fx,0,cx],[0,fy,cy],[0,0,1]], got {K.tolist()}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    def scaled(self, factor: float) -> Intrinsics:
        """Intrinsics of the image resized by ``factor`` (pixel-centre convention preserved)."""
        return self.resized(round(self.width * factor), round(self.height * factor))

    def resized(self, width: int, height: int) -> Intrinsics:
        """Intrinsics of the image resized to ``width × height`` (per-axis factors; pixel centres kept:
        ``c' = (c + 0.5) · s − 0.5``)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                          int(width), int(height))


# NOCS detect_eval.py / SPD / GPV-Pose (notes/depth_and_eval.md §5.5).
REAL_INTRINSICS = Intrinsics(591.0125, 590.16775, 322.525, 244.11084)
CAMERA_INTRINSICS = Intrinsics(577.5, 577.5, 319.5, 239.5)


@numpy_compatible
def project_points(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Project camera-frame points ``(*, N, 3)`` (metres) with ``K (*, 3, 3)`` to pixels ``(*, N, 2)``.

    Points with ``z <= 0`` give non-finite or meaningless pixels; callers filter them.
    """
    p = points @ K.to(points.dtype).transpose(-1, -2)
    return p[..., :2] / p[..., 2:3]


@numpy_compatible
def backproject_pixels(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixels ``uv (*, N, 2)`` with depths ``(*, N)`` (metres, along z) -> points ``(*, N, 3)``."""
    K = K.to(uv.dtype)
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
    x = (uv[..., 0] - cx) * depth / fx
    y = (uv[..., 1] - cy) * depth / fy
    return torch.stack([x, y, depth.to(uv.dtype)], dim=-1)


def depth_to_points(
    depth: np.ndarray, K: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Back-project a depth map to a point cloud.

    Args:
        depth: ``(H, W)`` depth in metres; 0 (or non-finite) means no measurement.
        K: ``(3, 3)`` intrinsics.
        mask: optional ``(H, W)`` bool selection.

    Returns:
        ``points (N, 3)`` float32 metres and their pixels ``uv (N, 2)`` int64 as (column, row), in
        row-major pixel order.
    """
    depth = np.asarray(depth)
    check_shape(depth, "H W", "depth")
    valid = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        check_shape(mask, "H W", "mask")
        if mask.shape != depth.shape:
            raise ValueError(f"mask: expected shape {depth.shape}, got {mask.shape}")
        valid &= mask.astype(bool)
    v, u = np.nonzero(valid)
    z = depth[v, u].astype(np.float64)
    uv = np.stack([u, v], axis=-1).astype(np.int64)
    pts = backproject_pixels(uv.astype(np.float64), z, np.asarray(K, dtype=np.float64))
    return pts.astype(np.float32), uv
