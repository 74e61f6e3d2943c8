"""Checks of the model contracts (:mod:`demopose.models.base`) shared by the model and the export tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from demopose.categories import CategoryTable
from demopose.models.base import Detector, PoseModel, PosePrediction


def check_pose_model(model) -> None:
    """``model`` is a :class:`PoseModel` and not a :class:`Detector`, with attributes of the documented types."""
    assert isinstance(model, PoseModel) and not isinstance(model, Detector), type(model).__name__
    assert dataclasses.is_dataclass(model.config) and not isinstance(model.config, type)
    assert isinstance(model.categories, CategoryTable)
    assert model.image_size is None or (len(model.image_size) == 2 and all(int(v) > 0 for v in model.image_size))
    assert model.rgb_size is None or int(model.rgb_size) > 0
    assert isinstance(model.mesh_points, int) and model.mesh_points >= 0
    if model.own_detector is not None:
        check_detector(model.own_detector)
        assert model.own_detector.categories.name == model.categories.name


def check_detector(model) -> None:
    """``model`` is a :class:`Detector` and not a :class:`PoseModel`, with attributes of the documented types."""
    assert isinstance(model, Detector) and not isinstance(model, PoseModel), type(model).__name__
    assert dataclasses.is_dataclass(model.config) and not isinstance(model.config, type)
    assert isinstance(model.categories, CategoryTable)
    assert len(model.image_size) == 2 and all(int(v) > 0 and int(v) % 32 == 0 for v in model.image_size)


def pose_batch(model, B: int = 2, N: int = 256, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random batch of ``B`` instances of ``N`` points with what ``model`` asks for (``rgb_size``,
    ``image_size``): the inputs of a :class:`PoseModel`."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(B, N, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 0.7])
    batch = {"points": pts, "class_ids": torch.arange(B).remainder(len(model.categories)) + 1}
    if model.rgb_size:
        s = int(model.rgb_size)
        batch["rgb"] = torch.rand(B, 3, s, s, generator=g)
        batch["rgb_pixels"] = torch.rand(B, N, 2, generator=g) * (s - 1)
    if model.image_size:
        W, H = (int(v) for v in model.image_size)
        batch["image"] = torch.rand(1, 3, H, W, generator=g)
        batch["image_index"] = torch.zeros(B, dtype=torch.int64)
        batch["image_pixels"] = torch.rand(B, N, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    return batch


def check_pose_prediction(pred, B: int) -> None:
    """A :class:`PosePrediction` of ``B`` finite poses with proper rotations."""
    assert isinstance(pred, PosePrediction)
    assert pred.R.shape == (B, 3, 3) and pred.t.shape == (B, 3) and pred.size.shape == (B, 3)
    assert all(torch.isfinite(x).all() for x in (pred.R, pred.t, pred.size))
    det = torch.linalg.det(pred.R.double())
    assert torch.allclose(det, torch.ones_like(det), atol=1e-4)
    assert pred.score is None or pred.score.shape == (B,)


def check_frame_detections(det, n_classes: int) -> None:
    """An :class:`~demopose.data.frame_instances.Instances` with consistent lengths, 1-based ids and feature maps."""
    M = len(det)
    assert det.boxes.shape == (M, 4) and det.scores.shape == (M,) and det.keypoints.shape == (M, 9, 2)
    assert det.rel_size.shape == (M, 3)
    assert np.all((det.class_ids >= 1) & (det.class_ids <= n_classes))
    assert det.features and all(f.ndim == 4 and f.shape[0] == 1 for f in det.features.values())
