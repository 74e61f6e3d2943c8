"""3D bounding boxes in the NOCS corner order.

Convention:
    Corner ``i`` of a box with extents ``(sx, sy, sz)`` centred at the origin is
    ``(±sx/2, ±sy/2, ±sz/2)`` in the order used by the NOCS code (hughw19/NOCS_CVPR2019 ``utils.py``,
    ``get_3d_bbox``): y is the slowest sign (the four ``+y`` corners first), then x, then z::

        0 (+x +y +z)  1 (+x +y -z)  2 (-x +y +z)  3 (-x +y -z)
        4 (+x -y +z)  5 (+x -y -z)  6 (-x -y +z)  7 (-x -y -z)

    :data:`BOX_EDGES` lists the 12 edges as corner index pairs for drawing.
"""

from __future__ import annotations

import torch

from demopose.geometry._backend import numpy_compatible

__all__ = ["BOX_CORNER_SIGNS", "BOX_EDGES", "box_corners", "box_corners_in_camera", "transform_points"]

BOX_CORNER_SIGNS = (
    (1, 1, 1), (1, 1, -1), (-1, 1, 1), (-1, 1, -1),
    (1, -1, 1), (1, -1, -1), (-1, -1, 1), (-1, -1, -1),
)
"""Sign of each coordinate of corners 0..7 (NOCS order)."""

BOX_EDGES = (
    (0, 1), (0, 2), (1, 3), (2, 3),  # top face (+y)
    (4, 5), (4, 6), (5, 7), (6, 7),  # bottom face (-y)
    (0, 4), (1, 5), (2, 6), (3, 7),  # vertical edges
)
"""The 12 box edges as corner index pairs."""


@numpy_compatible
def box_corners(size: torch.Tensor) -> torch.Tensor:
    """Corners ``(*, 8, 3)`` of origin-centred boxes with extents ``size (*, 3)``, NOCS order."""
    signs = torch.tensor(BOX_CORNER_SIGNS, dtype=size.dtype, device=size.device)
    return signs * (size[..., None, :] / 2)


@numpy_compatible
def transform_points(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Apply ``x' = R x + t``: ``points (*, N, 3)``, ``R (*, 3, 3)``, ``t (*, 3)`` -> ``(*, N, 3)``."""
    return points @ R.transpose(-1, -2) + t[..., None, :]


@numpy_compatible
def box_corners_in_camera(R: torch.Tensor, t: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Camera-frame corners ``(*, 8, 3)`` of posed boxes: ``R (*, 3, 3)``, ``t (*, 3)``, ``size (*, 3)``."""
    return transform_points(box_corners(size), R, t)
