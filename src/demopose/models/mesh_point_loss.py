"""The Mesh-Point Loss (MPL) of DeMo-Pose (seeds/000 §2.4): mesh-geometry supervision at training time.

A head predicts ``M`` mesh points of the instance in the camera frame *relative to the object centre*;
the target is ``R · M_gt`` where ``M_gt`` are Poisson-disk samples of the ground-truth mesh in the metric
object frame. The loss is the mean squared L2 distance, weighted by ``λ_MPL = 2000``. The head exists
only in training mode, so inference pays nothing.

Symmetric categories: for an object symmetric about its y axis the rotation about y is unobservable, so
point-to-point targets ``R · M_gt`` are defined only up to that rotation. For those rows the loss is the
symmetric Chamfer distance between the predicted and target point *sets* (both directions, mean squared
nearest-neighbour distance), which is invariant to it; for all other rows it is the point-wise L2.
"""

from __future__ import annotations

import torch
from torch import nn

from demopose.layers.knn import gather_points, nearest_indices

__all__ = ["MPL_WEIGHT", "MeshPointHead", "mesh_point_loss"]

MPL_WEIGHT = 2000.0
"""λ_MPL of the paper."""


class MeshPointHead(nn.Module):
    """Global feature ``(B, C)`` -> ``M`` mesh points ``(B, M, 3)`` in metres (object-centred camera frame)."""

    def __init__(self, in_channels: int, num_points: int = 1024, hidden: int = 512) -> None:
        super().__init__()
        self.num_points = num_points
        self.net = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_points * 3))

    def forward(self, f_global: torch.Tensor) -> torch.Tensor:
        return self.net(f_global).view(-1, self.num_points, 3) * 0.1  # ~10 cm initial spread


def _chamfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric Chamfer distance ``(B,)`` of ``(B, M, 3)`` sets: mean squared nearest-neighbour distance both
    ways. The nearest neighbours come from the neighbour search (no gradient, no ``(B, M, M)`` matrix in the
    graph); the distances to them carry the gradient, the same as through a minimum over all pairs."""
    to_b, to_a = nearest_indices(a, b), nearest_indices(b, a)
    return ((a - gather_points(b, to_b)).pow(2).sum(-1).mean(-1)
            + (b - gather_points(a, to_a)).pow(2).sum(-1).mean(-1))


def mesh_point_loss(pred: torch.Tensor, model_points: torch.Tensor, R: torch.Tensor,
                    y_symmetric: torch.Tensor) -> torch.Tensor:
    """Unweighted MPL, averaged over the batch.

    Args:
        pred: ``(B, M, 3)`` predicted points (object-centred, camera axes), metres.
        model_points: ``(B, M, 3)`` mesh samples in the metric object frame.
        R: ``(B, 3, 3)`` ground-truth rotations.
        y_symmetric: ``(B,)`` bool rows that use the Chamfer form.
    """
    target = model_points.to(pred.dtype) @ R.to(pred.dtype).transpose(1, 2)
    l2 = (pred - target).pow(2).sum(-1).mean(-1)
    sym = y_symmetric.bool()
    if bool(sym.any()):  # the Chamfer form on the symmetric rows only
        l2 = l2.masked_scatter(sym, _chamfer(pred[sym], target[sym]))
    return l2.mean()
