"""The objects of one frame, at every stage of inference: one record from detections to instances.

A detector finds objects (``boxes``, plus ``keypoints`` and ``rel_size`` for the monocular one), published
segmentations are read with their ``masks``, masks are cut from the depth inside the boxes, ground-truth masks
point back at the frame's annotations (``gt_index``): each stage fills in more fields of the same
:class:`Instances`, and the pose network reads ``masks``, ``class_ids`` and ``scores``
(:mod:`demopose.pipeline`).

Convention: pixels of the frame's original image, ``x1 y1 x2 y2`` boxes and ``(u, v)`` keypoints; 1-based
category ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["Instances"]

_PER_OBJECT = ("class_ids", "scores", "boxes", "masks", "keypoints", "rel_size", "gt_index")


@dataclass(kw_only=True)
class Instances:
    """M objects of one frame (detections, segmentations or ground truth).

    Attributes:
        class_ids: ``(M,)`` 1-based category ids.
        scores: ``(M,)`` confidences (1 for ground truth).
        boxes: ``(M, 4)`` ``x1 y1 x2 y2`` pixels, or None.
        masks: ``(M, H, W)`` bool instance masks, or None (detections before masks are cut).
        keypoints: ``(M, 9, 2)`` projected cuboid corners (NOCS order) and centre, pixels, or None.
        rel_size: ``(M, 3)`` relative box size (unit diagonal), or None.
        gt_index: ``(M,)`` index into ``frame.poses`` for ground-truth instances, else -1 (the default).
        features: the detector's feature maps of the frame, ``{level: (1, C, h, w)}`` (stride 8 is level 0), kept
            so that DeMo-Pose's fusion reuses them instead of running the backbone again; None when not kept.
        source: the file the instances were read from, if any.
        meta: other fields of that file (e.g. the ground-truth fields of DualPoseNet pickles).
    """

    class_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray | None = None
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    rel_size: np.ndarray | None = None
    gt_index: np.ndarray | None = None
    features: dict[int, torch.Tensor] | None = None
    source: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = len(self.class_ids)
        if self.gt_index is None:
            self.gt_index = np.full(m, -1, np.int64)
        for name in _PER_OBJECT:
            value = getattr(self, name)
            if value is not None and len(value) != m:
                raise ValueError(f"Instances.{name}: expected {m} entries (one per class id), got {len(value)}")

    def __len__(self) -> int:
        return len(self.class_ids)

    def select(self, index: np.ndarray | slice) -> Instances:
        """The objects at ``index`` (``(M,)`` bool or integer indices); ``features``, ``source`` and ``meta``
        are kept."""
        picked = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _PER_OBJECT:
            if picked[name] is not None:
                picked[name] = picked[name][index]
        return Instances(**picked)
