"""Where a frame's instances come from: ground truth, published segmentations, or a detector plus depth.

A mask source is a function ``Frame -> Instances`` (:class:`~demopose.data.frame_instances.Instances` with
``masks``), what :func:`~demopose.pipeline.run.run_inference` calls for every frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from demopose.categories import CategoryTable
from demopose.data.detections import detections_path, read_dualposenet_segmentation, read_spd_mrcnn
from demopose.data.frame import Frame
from demopose.data.frame_instances import Instances
from demopose.models.base import Detector, PoseModel
from demopose.pipeline.masks import masks_from_boxes

__all__ = ["MaskSource", "detection_instances", "detector_instances", "find_detector", "gt_instances",
           "published_detections", "score_filtered"]

MaskSource = Callable[[Frame], Instances]


def gt_instances(frame: Frame) -> Instances:
    """Ground-truth masks and classes (the common "GT masks" evaluation setting); ``gt_index`` points at
    ``frame.poses``."""
    n = len(frame)
    return Instances(masks=frame.masks(), class_ids=frame.class_ids.copy(), scores=np.ones(n), gt_index=np.arange(n))


def published_detections(root: str | Path, source: str = "dualposenet") -> MaskSource:
    """A mask source reading the published NOCS segmentation pickles of each frame (see
    :func:`demopose.data.detections.detections_path`)."""
    reader = read_dualposenet_segmentation if source == "dualposenet" else read_spd_mrcnn

    def fn(frame: Frame) -> Instances:
        m = frame.meta
        path = detections_path(root, m.get("kind", "real"), m.get("split", "test"), m.get("scene", ""),
                               m.get("image_id", ""), source)
        return reader(path)

    return fn


def find_detector(model: PoseModel | Detector) -> Detector | None:
    """The detector of ``model``: the model itself when it is a :class:`~demopose.models.base.Detector` (``mono``),
    else its ``own_detector`` (DeMo-Pose's frozen ``mono``; None for ``gpv``, ``cleanpose``: pose networks that need
    instance masks)."""
    return model if isinstance(model, Detector) else model.own_detector


def score_filtered(det: Instances, score_threshold: float) -> Instances:
    """The detections with score >= ``score_threshold`` (the feature maps kept)."""
    return det.select(np.asarray(det.scores) >= score_threshold)


def detection_instances(frame: Frame, det: Instances, categories: CategoryTable, min_pixels: int = 50,
                        keep_features: bool = False) -> Instances:
    """Instances of detections (``boxes``, ``class_ids``, ``scores``), each mask cut from the depth inside its box
    (:func:`~demopose.pipeline.masks.masks_from_boxes`; masks under ``min_pixels`` are dropped, and their
    detections with them). ``keep_features``: pass the detector's feature maps on (``Instances.features``), for a
    DeMo-Pose model whose own detector this is."""
    masks, k = masks_from_boxes(frame, det.boxes, det.class_ids, det.scores, categories, min_pixels=min_pixels)
    kept = det.select(k)
    return replace(kept, masks=masks, class_ids=kept.class_ids.astype(np.int64),
                   scores=kept.scores.astype(np.float64), features=det.features if keep_features else None)


def detector_instances(detector: Detector, score_threshold: float = 0.3, min_pixels: int = 50,
                       device: torch.device | str | None = None, keep_features: bool = False) -> MaskSource:
    """A mask source from a monocular detector: its objects with score >= ``score_threshold``
    (:func:`score_filtered`) and their depth masks (:func:`detection_instances`). The detector masks of
    ``demopose test ... eval.masks=detector``; :class:`~demopose.Predictor` and ``demopose predict`` run the same
    two steps."""

    def fn(frame: Frame) -> Instances:
        det = score_filtered(detector.detect_frame(frame, device=device), score_threshold)
        return detection_instances(frame, det, detector.categories, min_pixels, keep_features)

    return fn
