"""One frame's instances through a pose network: point samples -> batch -> prediction -> poses."""

from __future__ import annotations

import logging

import numpy as np
import torch

from demopose._device import move_to_device
from demopose.data.frame import Frame
from demopose.data.frame_instances import Instances
from demopose.data.instances import N_POINTS, collate_instances, sample_instance
from demopose.geometry.pose import PoseSet
from demopose.models.base import PoseModel, PosePrediction

__all__ = ["MIN_SIZE", "frame_batch", "inference_settings", "poses_from_prediction", "predict_frame", "run_batch"]

MIN_SIZE = 0.005
"""Smallest box extent (metres) a predicted pose is given: the networks regress sizes as residuals and can
predict negative or near-zero extents, which are raised to this floor (5 mm); see :func:`poses_from_prediction`."""

log = logging.getLogger(__name__)


def inference_settings(config: dict | None) -> dict[str, int]:
    """``{"n_points", "seed"}`` of a run config (a checkpoint's stored ``config``: ``data.n_points``, ``eval.seed``;
    defaults :data:`~demopose.data.instances.N_POINTS` and 0): a checkpoint is run with the point count it was
    trained and tested with, whichever command runs it."""
    cfg = config if isinstance(config, dict) else {}
    data, ev = cfg.get("data") or {}, cfg.get("eval") or {}
    return {"n_points": int(data.get("n_points") or N_POINTS), "seed": int(ev.get("seed") or 0)}


def frame_batch(model: PoseModel, frame: Frame, instances: Instances, n_points: int = N_POINTS,
                seed: int = 0, image_features: dict[int, torch.Tensor] | None = None) -> tuple[dict | None, np.ndarray]:
    """Sample the points of every instance of a frame and collate them into the model's batch (CPU tensors).

    Args:
        instances: the frame's instances, with ``masks (M, H, W)``.
        image_features: the detector's feature maps of this frame (``Instances.features``); models reading
            the whole frame then reuse them instead of the letterboxed image.

    Returns:
        the batch (None when no instance has enough valid depth points) and the ``(M',)`` indices of the
        instances it holds. Models reading the whole frame (DeMo-Pose) also get ``image (1, 3, H_in, W_in)``
        (or ``image_features``) and ``image_index (M',)``.
    """
    rng = np.random.default_rng(int(seed))
    samples, kept = [], []
    rgb_size = model.rgb_size  # models with an RGB branch ask for the instance crop (CleanPose)
    image_size = model.image_size  # models reading the whole frame (DeMo-Pose)
    for j in range(len(instances.class_ids)):
        s = sample_instance(frame, instances.masks[j], int(instances.class_ids[j]), rng, n_points,
                            rgb_size=rgb_size, image_size=image_size)
        if s is not None:
            samples.append(s)
            kept.append(j)
    kept_arr = np.asarray(kept, dtype=np.int64)
    if not samples:
        return None, kept_arr
    batch = collate_instances(samples)
    if image_size and image_features is not None:  # the detection pass's feature maps of the frame
        batch["image_features"] = dict(image_features)
        batch["image_index"] = torch.zeros(len(samples), dtype=torch.int64)
    elif image_size:  # the frame once for all its instances
        from demopose.data.detection_samples import letterbox_image

        batch["image"] = torch.from_numpy(letterbox_image(frame.rgb, image_size))[None]
        batch["image_index"] = torch.zeros(len(samples), dtype=torch.int64)
    return batch, kept_arr


@torch.no_grad()
def run_batch(model: PoseModel, batch: dict, seed: int = 0, device: torch.device | str = "cpu") -> PosePrediction:
    """The model's prediction for a :func:`frame_batch` batch, moved to ``device``; random pooling is seeded."""
    batch = move_to_device(batch, torch.device(device))
    gen = torch.Generator(device=batch["points"].device).manual_seed(int(seed))
    return model(batch, generator=gen)


def poses_from_prediction(pred: PosePrediction, instances: Instances, kept: np.ndarray) -> PoseSet:
    """The :class:`PoseSet` of a prediction for the instances ``kept`` (scores = detection scores).

    Box extents below :data:`MIN_SIZE` (negative, zero or a few millimetres: the size heads regress residuals) are
    raised to it, so no output holds a degenerate box; an extent equal to ``MIN_SIZE`` marks such a clamp."""
    size = pred.size.double().cpu().numpy()
    low = size < MIN_SIZE
    if low.any():
        log.debug("%d predicted box extent(s) below %.3f m raised to it", int(low.sum()), MIN_SIZE)
        size = np.maximum(size, MIN_SIZE)
    return PoseSet(instances.class_ids[kept], pred.R.double().cpu().numpy(), pred.t.double().cpu().numpy(),
                   size, instances.scores[kept])


@torch.no_grad()
def predict_frame(model: PoseModel, frame: Frame, instances: Instances, n_points: int = N_POINTS,
                  seed: int = 0, device: torch.device | str = "cpu",
                  image_features: dict[int, torch.Tensor] | None = None) -> tuple[PoseSet, np.ndarray]:
    """Estimate the pose of every instance of a frame (:func:`frame_batch`, :func:`run_batch`,
    :func:`poses_from_prediction`); ``image_features``: see :func:`frame_batch`.

    Returns:
        the predicted :class:`PoseSet` (scores = detection scores) and the ``(M,)`` indices of the
        instances it covers (instances with too few valid depth points are skipped).
    """
    batch, kept = frame_batch(model, frame, instances, n_points, seed, image_features)
    if batch is None:
        return PoseSet.empty(), kept
    return poses_from_prediction(run_batch(model, batch, seed, device), instances, kept), kept
