"""Run a pose model over frames: instance masks -> samples -> network -> poses -> results / metrics.

The same path serves validation during training, ``demopose test`` and the predictor. The model is put
in eval mode for the run and its previous mode is restored in ``finally``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from demopose.data.detections import Detections, detections_path, read_dualposenet_segmentation, read_spd_mrcnn
from demopose.data.frame import Frame
from demopose.data.instances import N_POINTS, collate_instances, sample_instance
from demopose.engine import dist
from demopose.engine.trainer import move_to_device
from demopose.geometry.pose import PoseSet
from demopose.models.base import Detector, PoseModel, PosePrediction

__all__ = ["MIN_SIZE", "FrameInstances", "MaskSource", "detection_instances", "detector_instances", "find_detector",
           "frame_batch", "gt_instances", "inference_settings", "instances_from_detections", "poses_from_prediction",
           "predict_frame", "published_detections", "run_batch", "run_inference", "score_filtered"]

MIN_SIZE = 0.005
"""Smallest box extent (metres) a predicted pose is given: the networks regress sizes as residuals and can
predict negative or near-zero extents, which are raised to this floor (5 mm); see :func:`poses_from_prediction`."""

log = logging.getLogger(__name__)


@dataclass
class FrameInstances:
    """The instances to estimate in one frame.

    Attributes:
        masks: ``(M, H, W)`` bool.
        class_ids: ``(M,)`` 1-based category ids.
        scores: ``(M,)`` detection confidences (1 for ground-truth masks).
        gt_index: ``(M,)`` index into ``frame.poses`` when the masks are the ground truth, else -1.
        features: the detector's feature maps of the frame when the instances come from a DeMo-Pose model's own
            detector (its fusion reuses them, :func:`frame_batch`), else None.
    """

    masks: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    gt_index: np.ndarray
    features: dict[int, torch.Tensor] | None = None


MaskSource = Callable[[Frame], FrameInstances]


def gt_instances(frame: Frame) -> FrameInstances:
    """Ground-truth masks and classes (the common "GT masks" evaluation setting)."""
    n = len(frame)
    return FrameInstances(frame.masks(), frame.class_ids.copy(), np.ones(n), np.arange(n))


def instances_from_detections(det: Detections) -> FrameInstances:
    """Wrap read detections (Mask R-CNN / DualPoseNet pickles, or any detector)."""
    return FrameInstances(det.masks.astype(bool), det.class_ids.astype(np.int64), det.scores.astype(np.float64),
                          np.full(len(det), -1))


def published_detections(root: str | Path, source: str = "dualposenet") -> MaskSource:
    """A mask source reading the published NOCS segmentation pickles of each frame (see
    :func:`demopose.data.detections.detections_path`)."""
    reader = read_dualposenet_segmentation if source == "dualposenet" else read_spd_mrcnn

    def fn(frame: Frame) -> FrameInstances:
        m = frame.meta
        path = detections_path(root, m.get("kind", "real"), m.get("split", "test"), m.get("scene", ""),
                               m.get("image_id", ""), source)
        return instances_from_detections(reader(path))

    return fn


def find_detector(model: PoseModel | Detector) -> Detector | None:
    """The detector of ``model``: the model itself when it is a :class:`~demopose.models.base.Detector` (``mono``),
    else its ``own_detector`` (DeMo-Pose's frozen ``mono``; None for ``gpv``, ``cleanpose``: pose networks that need
    instance masks)."""
    return model if isinstance(model, Detector) else model.own_detector


def score_filtered(det, score_threshold: float):
    """The detections of a :class:`~demopose.models.mono.FrameDetections` with score >= ``score_threshold``
    (its feature maps kept)."""
    from demopose.models.mono import FrameDetections

    keep = np.asarray(det.scores) >= score_threshold
    return FrameDetections(boxes=det.boxes[keep], class_ids=det.class_ids[keep], scores=det.scores[keep],
                           keypoints=det.keypoints[keep], rel_size=det.rel_size[keep], features=det.features)


def detection_instances(frame: Frame, det, categories, min_pixels: int = 50,
                        keep_features: bool = False) -> FrameInstances:
    """Instances of detections (``boxes``, ``class_ids``, ``scores``), each mask cut from the depth inside its box
    (:func:`demopose.engine.masks.masks_from_boxes`; masks under ``min_pixels`` are dropped). ``keep_features``:
    pass the detector's feature maps on (``FrameInstances.features``), for a DeMo-Pose model whose own detector
    this is."""
    from demopose.engine.masks import masks_from_boxes

    cls, scores = det.class_ids, det.scores
    masks, k = masks_from_boxes(frame, det.boxes, cls, scores, categories, min_pixels=min_pixels)
    return FrameInstances(masks, cls[k].astype(np.int64), scores[k].astype(np.float64), np.full(len(k), -1),
                          det.features if keep_features else None)


def detector_instances(detector: Detector, score_threshold: float = 0.3, min_pixels: int = 50,
                       device: torch.device | str | None = None, keep_features: bool = False) -> MaskSource:
    """A mask source from a monocular detector: its objects with score >= ``score_threshold``
    (:func:`score_filtered`) and their depth masks (:func:`detection_instances`). The detector masks of
    ``demopose test ... eval.masks=detector``; :class:`~demopose.Predictor` and ``demopose predict`` run the same
    two steps."""

    def fn(frame: Frame) -> FrameInstances:
        det = score_filtered(detector.detect_frame(frame, device=device), score_threshold)
        return detection_instances(frame, det, detector.categories, min_pixels, keep_features)

    return fn


def inference_settings(config: dict | None) -> dict[str, int]:
    """``{"n_points", "seed"}`` of a run config (a checkpoint's stored ``config``: ``data.n_points``, ``eval.seed``;
    defaults :data:`~demopose.data.instances.N_POINTS` and 0): a checkpoint is run with the point count it was
    trained and tested with, whichever command runs it."""
    cfg = config if isinstance(config, dict) else {}
    data, ev = cfg.get("data") or {}, cfg.get("eval") or {}
    return {"n_points": int(data.get("n_points") or N_POINTS), "seed": int(ev.get("seed") or 0)}


def frame_batch(model: PoseModel, frame: Frame, instances: FrameInstances, n_points: int = N_POINTS,
                seed: int = 0, image_features: dict[int, torch.Tensor] | None = None) -> tuple[dict | None, np.ndarray]:
    """Sample the points of every instance of a frame and collate them into the model's batch (CPU tensors).

    Args:
        image_features: the detector's feature maps of this frame (``FrameDetections.features``); models reading
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


def poses_from_prediction(pred, instances: FrameInstances, kept: np.ndarray) -> PoseSet:
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
def predict_frame(model: PoseModel, frame: Frame, instances: FrameInstances, n_points: int = N_POINTS,
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


def run_inference(model: PoseModel | Detector, frames: Sequence[Frame] | Iterable[Frame],
                  mask_source: MaskSource = gt_instances, evaluator=None, results_dir: str | Path | None = None,
                  n_points: int = N_POINTS, seed: int = 0, device: torch.device | str = "cpu",
                  progress: bool = True, indices: Sequence[int] | None = None,
                  on_frame: Callable[[Frame, PoseSet, PoseSet], None] | None = None) -> dict[str, float]:
    """Predict every frame, feed the evaluator, and write one NOCS results pkl per frame.

    Args:
        frames: a frame dataset (indexable) or iterable.
        indices: the subset of ``frames`` to run (e.g. this rank's shard); default all.
        evaluator: a :class:`~demopose.evaluation.NOCSEvaluator` (reset here), or None.
        results_dir: where ``results_<frame id>.pkl`` files go, or None.
        seed: point sampling / random pooling seed; frame ``i`` uses ``seed + i``.
        on_frame: called with ``(frame, predictions, ground truth)`` after each frame (e.g. a per-object tally).

    Returns:
        ``evaluator.evaluate()`` over the frames of every rank (under ``torchrun``, each rank passes its shard
        as ``indices`` and the evaluators' states are merged), or an empty dict without an evaluator.
    """
    from tqdm.auto import tqdm

    from demopose.evaluation.results import FrameResult, write_results_pkl

    was_training = model.training
    model.eval()
    if evaluator is not None:
        evaluator.reset()
    # a detector (the monocular model) finds its objects itself and ignores ``mask_source``; it also gets 2D box
    # AP@0.5 and keypoint pixel error (keys ``det2d/...``)
    detects = isinstance(model, Detector)
    det_ev = None
    if detects and evaluator is not None:
        from demopose.evaluation.detection2d import Detection2DEvaluator

        det_ev = Detection2DEvaluator(evaluator.categories)
    order = list(range(len(frames))) if indices is None else [int(i) for i in indices]  # type: ignore[arg-type]
    try:
        for i in tqdm(order, desc="inference", unit="frame", disable=not progress):
            frame = frames[i]  # type: ignore[index]
            if detects:
                pred = _self_detected(model, frame, device, det_ev)
            else:
                inst = mask_source(frame)
                pred, _ = predict_frame(model, frame, inst, n_points, seed + i, device, inst.features)
            gt = frame.ground_truth() if frame.poses is not None else PoseSet.empty()
            if evaluator is not None:
                evaluator.process(pred, gt)
            if on_frame is not None:
                on_frame(frame, pred, gt)
            if results_dir is not None:
                name = (frame.frame_id or f"frame_{i:06d}").replace("/", "_")
                write_results_pkl(Path(results_dir) / f"results_{name}.pkl",
                                  FrameResult(frame.frame_id or str(i), pred, gt))
    finally:
        model.train(was_training)
    if evaluator is None:
        return {}
    # under torchrun every rank ran its shard of ``indices``: merge the evaluators' states (the evaluators hold
    # no distributed code), then every rank scores the whole split
    dist.gather_evaluator(evaluator)
    metrics = evaluator.evaluate()
    if det_ev is not None:
        dist.gather_evaluator(det_ev)
        metrics.update(det_ev.evaluate())
    return metrics


def _self_detected(model: Detector, frame: Frame, device, det_ev) -> PoseSet:
    """Poses from a detector; feeds the 2D detection evaluator when given."""
    det = model.detect_frame(frame, device=device)
    if det_ev is not None and frame.poses is not None:
        from demopose.data.detection_samples import frame_targets

        gt = frame_targets(frame)
        det_ev.process(det.boxes, det.class_ids, det.scores, det.keypoints, gt.boxes, gt.labels + 1, gt.keypoints)
    return model.poses_from_detections(frame, det)
