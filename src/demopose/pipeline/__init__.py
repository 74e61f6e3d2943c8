"""Inference, below both the training engine and the predictor: frame -> detections -> masks -> instances ->
poses.

- :mod:`~demopose.pipeline.sources`: a frame's :class:`~demopose.data.frame_instances.Instances` from the ground
  truth, published segmentations or a detector (:mod:`~demopose.pipeline.masks` cuts masks from the depth inside
  its boxes);
- :mod:`~demopose.pipeline.predict`: one frame's instances through a pose network;
- :mod:`~demopose.pipeline.run`: a model over many frames, into results files and an evaluator.

Imports models, data, evaluation and geometry; nothing from the engine, the predictor or the CLI.
"""

from demopose.data.frame_instances import Instances
from demopose.pipeline.masks import masks_from_boxes, support_plane
from demopose.pipeline.predict import (
    MIN_SIZE,
    frame_batch,
    inference_settings,
    poses_from_prediction,
    predict_frame,
    run_batch,
)
from demopose.pipeline.run import run_inference
from demopose.pipeline.sources import (
    MaskSource,
    detection_instances,
    detector_instances,
    find_detector,
    gt_instances,
    published_detections,
    score_filtered,
)

__all__ = ["MIN_SIZE", "Instances", "MaskSource", "detection_instances", "detector_instances", "find_detector",
           "frame_batch", "gt_instances", "inference_settings", "masks_from_boxes", "poses_from_prediction",
           "predict_frame", "published_detections", "run_batch", "run_inference", "score_filtered",
           "support_plane"]
