"""Run a model over frames: instances -> poses -> results files and metrics.

The same path serves validation during training, ``demopose test`` and the benchmarks. The model is put in eval
mode for the run and its previous mode is restored in ``finally``. Nothing here is distributed: a caller that
shards the frames over ranks passes ``gather`` (the engine's :func:`~demopose.engine.dist.gather_evaluator`),
which merges the evaluators' states before they are scored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from demopose.data.frame import Frame
from demopose.data.instances import N_POINTS
from demopose.geometry.pose import PoseSet
from demopose.models.base import Detector, PoseModel
from demopose.pipeline.predict import predict_frame
from demopose.pipeline.sources import MaskSource, gt_instances

__all__ = ["run_inference"]


def run_inference(model: PoseModel | Detector, frames: Sequence[Frame] | Iterable[Frame],
                  mask_source: MaskSource = gt_instances, evaluator: Any = None,
                  results_dir: str | Path | None = None, n_points: int = N_POINTS, seed: int = 0,
                  device: torch.device | str = "cpu", progress: bool = True, indices: Sequence[int] | None = None,
                  on_frame: Callable[[Frame, PoseSet, PoseSet], None] | None = None,
                  gather: Callable[[Any], None] | None = None) -> dict[str, float]:
    """Predict every frame, feed the evaluator, and write one NOCS results pkl per frame.

    Args:
        frames: a frame dataset (indexable) or iterable.
        mask_source: the instances of a frame (:mod:`demopose.pipeline.sources`); a detector (the monocular
            model) finds its objects itself and ignores it.
        evaluator: a :class:`~demopose.evaluation.NOCSEvaluator` (reset here), or None.
        results_dir: where ``results_<frame id>.pkl`` files go, or None.
        n_points: points sampled per instance.
        seed: point sampling / random pooling seed; frame ``i`` uses ``seed + i``.
        indices: the subset of ``frames`` to run (e.g. this rank's shard); default all.
        on_frame: called with ``(frame, predictions, ground truth)`` after each frame (e.g. a per-object tally).
        gather: called with each evaluator before it is scored, to merge the states of the evaluators of every
            rank (the engine's ``dist.gather_evaluator``); None on one process.

    Returns:
        ``evaluator.evaluate()`` (plus the monocular detector's ``det2d/...`` keys), or an empty dict without an
        evaluator.
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
    if gather is not None:  # every rank ran its shard of ``indices``: every rank then scores the whole split
        gather(evaluator)
    metrics = evaluator.evaluate()
    if det_ev is not None:
        if gather is not None:
            gather(det_ev)
        metrics.update(det_ev.evaluate())
    return metrics


def _self_detected(model: Detector, frame: Frame, device: torch.device | str, det_ev: Any) -> PoseSet:
    """Poses from a detector; feeds the 2D detection evaluator when given."""
    det = model.detect_frame(frame, device=device)
    if det_ev is not None and frame.poses is not None:
        from demopose.data.detection_samples import frame_targets

        gt = frame_targets(frame)
        det_ev.process(det.boxes, det.class_ids, det.scores, det.keypoints, gt.boxes, gt.labels + 1, gt.keypoints)
    return model.poses_from_detections(frame, det)
