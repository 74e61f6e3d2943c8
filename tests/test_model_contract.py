"""Every registered model keeps its contract (:mod:`demopose.models.base`): a pose model or a detector, with one
name for its config, its category table and its data needs, built, run on a tiny input and checked."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from contract_checks import (
    check_detector,
    check_frame_detections,
    check_pose_model,
    check_pose_prediction,
    pose_batch,
)
from demopose.categories import NOCS_REAL
from demopose.data.frame import Frame
from demopose.geometry.camera import REAL_INTRINSICS, Intrinsics
from demopose.geometry.pose import PoseSet
from demopose.models import build_model, list_models
from demopose.models.base import Detector
from demopose.models.mono import DetectionHeadOutputs


def _small(name: str) -> str:
    """The small preset of a registered name (the name itself when it is one)."""
    return name if name.endswith("_small") or f"{name}_small" not in list_models() else f"{name}_small"


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_keeps_its_contract(name):
    model = build_model(name)
    if isinstance(model, Detector):
        check_detector(model)
    else:
        check_pose_model(model)


def _frame(W: int = 160, H: int = 120) -> Frame:
    g = np.random.default_rng(0)
    K = REAL_INTRINSICS.K.copy()
    K[:2] *= W / 640
    return Frame(rgb=g.integers(0, 255, (H, W, 3), dtype=np.uint8), depth=np.full((H, W), 0.8, np.float32),
                 intrinsics=Intrinsics.from_matrix(K, W, H), instance_map=np.zeros((H, W), np.int32),
                 instance_ids=np.zeros(0, np.int64), class_ids=np.zeros(0, np.int64), categories=NOCS_REAL)


@pytest.mark.parametrize("name", sorted({_small(n) for n in list_models()}))
def test_small_preset_runs_on_a_tiny_input(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    if isinstance(model, Detector):
        check_detector(model)
        W, H = model.image_size
        with torch.no_grad():
            dense = model({"image": torch.rand(1, 3, H, W)})
        assert isinstance(dense, DetectionHeadOutputs)  # training outputs, not an empty pose
        assert dense.cls.shape[:2] == (1, int(dense.level_sizes.sum())) and dense.cls.shape[2] == len(model.categories)
        model.config = dataclasses.replace(model.config, score_threshold=0.0)  # random weights: keep some detections
        frame = _frame()
        det = model.detect_frame(frame)
        check_frame_detections(det, len(model.categories))
        assert len(det) > 0
        assert isinstance(model.poses_from_detections(frame, det), PoseSet)
        return
    check_pose_model(model)
    batch = pose_batch(model)
    with torch.no_grad():
        a = model(batch, generator=torch.Generator().manual_seed(3))
        b = model(batch, generator=torch.Generator().manual_seed(3))
    check_pose_prediction(a, 2)
    assert torch.equal(a.R, b.R) and torch.equal(a.t, b.t) and torch.equal(a.size, b.size)  # seeded: reproducible


@pytest.mark.parametrize(("name", "old", "new"), [("mono_small", "cfg", "config"), ("demopose_small", "cfg", "config"),
                                                  ("gpv_small", "table", "categories")])
def test_renamed_attributes_keep_a_deprecated_alias(name, old, new):
    model = build_model(name)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: use .*{new}"):
        assert getattr(model, old) is getattr(model, new)
