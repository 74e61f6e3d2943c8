"""The NOCS category-level pose evaluator (detectron2-style ``reset / process / evaluate``).

Protocol (hughw19/NOCS_CVPR2019 ``utils.py`` ``compute_degree_cm_mAP`` with ``use_matches_for_pose``,
as used by NOCS, SPD, DualPoseNet, GPV-Pose, HS-Pose; notes/depth_and_eval.md §4), per category and
frame:

1. Predictions sorted by decreasing score; IoU matrix against the ground truths (:mod:`.iou`, with the
   20-step y rotation search for y-symmetric ground truths); greedy IoU matching at every IoU
   threshold with a strict ``IoU > τ`` (:func:`.matching.match_by_iou`).
2. Pose matching among the predictions and ground truths matched at ``IoU > 0.1``: rotation error (y
   axis only for y-symmetric ground truths, i.e. ``CategoryTable.symmetry_flags``) and translation
   error in cm, greedy matching on the (degree, cm) grid (:func:`.matching.match_by_pose`).
3. Over all frames, VOC all-point AP per category (:func:`.ap.voc_ap`); mean over the categories that
   have ground truth (:class:`.summary.NOCSMetrics`).

IoU modes (always part of the metric name): ``nocs`` reproduces the published numbers (buggy axis-0
IoU, IoU stored as float32 like the published overlap matrix and compared in float64 like NumPy 1.x
did, unclipped arccos so that a NaN rotation error counts as a hit); ``exact`` uses the true oriented
IoU and a clipped arccos.

Deliberate deviations from the published code, all for inputs where it is undefined:
* a category with no ground truth is *absent* (no NaN in the mean, see :mod:`.summary`);
* a category that has ground truth but none matched at IoU > 0.1 gets pose AP 0 (published: NaN);
* rows of ``pred_bboxes`` are not used (the published code asserts none is all-zero).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from demopose._checks import check_finite
from demopose.categories import CategoryTable
from demopose.evaluation.ap import voc_ap
from demopose.evaluation.errors import rotation_error_deg, translation_error_cm
from demopose.evaluation.iou import IOU_MODES, iou_3d
from demopose.evaluation.matching import match_by_iou, match_by_pose, score_order
from demopose.evaluation.summary import (
    DEFAULT_DEGREE_THRESHOLDS,
    DEFAULT_IOU_THRESHOLDS,
    DEFAULT_SHIFT_THRESHOLDS,
    NOCSMetrics,
)
from demopose.geometry import PoseSet

__all__ = ["NOCSEvaluator"]

logger = logging.getLogger(__name__)


@dataclass
class _Accumulator:
    """Per-category match flags gathered over frames (one per IoU mode and category)."""

    iou_tp: list[np.ndarray] = field(default_factory=list)  # (T, m) bool per frame
    iou_scores: list[np.ndarray] = field(default_factory=list)
    num_gt: int = 0
    num_pred: int = 0
    pose_tp: list[np.ndarray] = field(default_factory=list)  # (D, S, m') bool per frame
    pose_scores: list[np.ndarray] = field(default_factory=list)
    pose_num_gt: int = 0


class NOCSEvaluator:
    """Accumulate predictions and ground truths frame by frame, then compute NOCS AP metrics.

    Args:
        categories: the dataset's category table (ids, names, symmetry rules).
        iou_mode: ``"nocs"``, ``"exact"`` or ``"both"``.
        category_ids: evaluate only these ids (default: every category of the table).
        iou_thresholds: IoU grid (default 0..1 step 0.01); must contain ``iou_pose_threshold``.
        degree_thresholds: rotation grid in degrees (default 0..60 step 1); 360 is appended.
        shift_thresholds: translation grid in cm (default 0..10 step 0.5); 100 is appended.
        iou_pose_threshold: IoU above which a pair is eligible for pose matching (0.1).
        use_matches_for_pose: restrict pose matching to IoU-matched pairs (True, as published).

    Example::

        ev = NOCSEvaluator(NOCS_REAL, iou_mode="both")
        for pred, gt in frames:
            ev.process(pred, gt)
        metrics = ev.evaluate()          # {"nocs/mug/iou50": 0.96, "exact/mean/5deg2cm": ..., ...}
        curves = ev.results["nocs"]      # NOCSMetrics with the full AP curves
    """

    def __init__(self, categories: CategoryTable, iou_mode: str = "nocs",
                 category_ids: Sequence[int] | None = None,
                 iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
                 degree_thresholds: Sequence[float] = DEFAULT_DEGREE_THRESHOLDS,
                 shift_thresholds: Sequence[float] = DEFAULT_SHIFT_THRESHOLDS,
                 iou_pose_threshold: float = 0.1, use_matches_for_pose: bool = True) -> None:
        if iou_mode not in (*IOU_MODES, "both"):
            raise ValueError(f"iou_mode: expected one of {(*IOU_MODES, 'both')}, got {iou_mode!r}")
        self.categories = categories
        self.modes = IOU_MODES if iou_mode == "both" else (iou_mode,)
        ids = tuple(categories.ids if category_ids is None else (int(c) for c in category_ids))
        for c in ids:
            categories[c]  # raises KeyError naming the table and the valid ids
        self.category_ids = ids
        self.iou_thresholds = np.asarray(iou_thresholds, dtype=np.float64)
        self.degree_thresholds = np.asarray(list(degree_thresholds) + [360.0], dtype=np.float64)
        self.shift_thresholds = np.asarray(list(shift_thresholds) + [100.0], dtype=np.float64)
        self.use_matches_for_pose = use_matches_for_pose
        hits = np.nonzero(np.isclose(self.iou_thresholds, iou_pose_threshold, rtol=0, atol=1e-12))[0]
        if use_matches_for_pose and len(hits) == 0:
            raise ValueError(f"iou_thresholds: must contain iou_pose_threshold={iou_pose_threshold}")
        self._pose_k = int(hits[0]) if len(hits) else -1
        self.results: dict[str, NOCSMetrics] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every processed frame."""
        self._acc = {m: {c: _Accumulator() for c in self.category_ids} for m in self.modes}
        self._num_frames = 0
        self.results = {}

    def process(self, pred: PoseSet, gt: PoseSet) -> None:
        """Add one frame: ``pred`` (M poses with scores) and ``gt`` (G poses with handle visibility).

        Poses of categories outside ``category_ids`` (including id 0) are ignored.

        Raises:
            ValueError: a non-finite rotation, translation, size or score.
        """
        for name, ps in (("pred", pred), ("gt", gt)):
            for attr in ("R", "t", "size", "scores"):
                check_finite(getattr(ps, attr), f"{name}.{attr}")
        self._num_frames += 1
        sym_gt = self.categories.symmetry_flags(gt.class_ids, gt.handle_visible) if len(gt) else \
            np.zeros(0, bool)
        full_nocs = None
        if "nocs" in self.modes and len(pred) and len(gt):
            # one batched computation for every pred × GT pair of the frame
            same = pred.class_ids[:, None] == gt.class_ids[None]
            full_nocs = iou_3d(pred.R, pred.t, pred.size, gt.R, gt.t, gt.size,
                               symmetric=same & sym_gt[None], mode="nocs")
            # the published overlap matrix is float32; compare in float64 as NumPy 1.x did
            full_nocs = full_nocs.astype(np.float32).astype(np.float64)
        # pose errors of every pred × GT pair of the frame, once per clipping behaviour
        rot_err: dict[str, np.ndarray] = {}
        trans_err = np.zeros((len(pred), len(gt)))
        if len(pred) and len(gt):
            trans_err = translation_error_cm(pred.t, gt.t)
            for mode in self.modes:
                rot_err[mode] = rotation_error_deg(pred.R, gt.R, sym_gt[None], clip=(mode != "nocs"))
        for c in self.category_ids:
            pm = np.nonzero(pred.class_ids == c)[0]
            gi = np.nonzero(gt.class_ids == c)[0]
            if len(pm) == 0 and len(gi) == 0:
                continue
            pi = pm[score_order(pred.scores[pm])]
            for mode in self.modes:
                if mode == "nocs":
                    iou = full_nocs[np.ix_(pi, gi)] if full_nocs is not None else np.zeros((len(pi), len(gi)))
                else:
                    iou = iou_3d(pred.R[pi], pred.t[pi], pred.size[pi], gt.R[gi], gt.t[gi], gt.size[gi],
                                 symmetric=sym_gt[gi], mode="exact")
                self._add(self._acc[mode][c], iou, rot_err.get(mode), trans_err, pred.scores, pi, gi)

    def _add(self, acc: _Accumulator, iou: np.ndarray, rot_err: np.ndarray | None, trans_err: np.ndarray,
             scores: np.ndarray, pi: np.ndarray, gi: np.ndarray) -> None:
        """Match one category of one frame (``pi`` in score order, ``gi``) and store the flags."""
        pmatch, gmatch = match_by_iou(iou, self.iou_thresholds)
        acc.iou_tp.append(pmatch >= 0)
        acc.iou_scores.append(scores[pi])
        acc.num_gt += len(gi)
        acc.num_pred += len(pi)
        if self.use_matches_for_pose:
            pi, gi = pi[pmatch[self._pose_k] >= 0], gi[gmatch[self._pose_k] >= 0]
        if len(pi) and len(gi):
            ix = np.ix_(pi, gi)
            ppose, _ = match_by_pose(rot_err[ix], trans_err[ix], self.degree_thresholds, self.shift_thresholds)
        else:
            ppose = -np.ones((len(self.degree_thresholds), len(self.shift_thresholds), len(pi)), np.int64)
        acc.pose_tp.append(ppose >= 0)
        acc.pose_scores.append(scores[pi])
        acc.pose_num_gt += len(gi)

    def state(self) -> dict:
        """What this evaluator has accumulated (picklable): the input of :meth:`load_state`.

        Several evaluators that each processed part of the frames (e.g. one per rank, gathered by the engine)
        are combined by ``ev.load_state(*states)``; the result equals one evaluator that processed them all.
        """
        return {"modes": self.modes, "category_ids": self.category_ids, "acc": self._acc,
                "num_frames": self._num_frames}

    def load_state(self, *states: dict) -> None:
        """Replace what this evaluator accumulated by the concatenation of ``states`` (:meth:`state`, in order).

        Raises:
            ValueError: a state of an evaluator with other IoU modes or categories.
        """
        for st in states:
            if tuple(st["modes"]) != tuple(self.modes) or tuple(st["category_ids"]) != tuple(self.category_ids):
                raise ValueError(f"load_state: a state of modes {st['modes']} / categories {st['category_ids']} "
                                 f"cannot join an evaluator of {self.modes} / {self.category_ids}")
        self._acc = _merge([st["acc"] for st in states]) if states else \
            {m: {c: _Accumulator() for c in self.category_ids} for m in self.modes}
        self._num_frames = sum(int(st["num_frames"]) for st in states)
        self.results = {}

    def evaluate(self) -> dict[str, float]:
        """Compute the AP curves of every mode and return the flat headline dict.

        Only this evaluator's frames count: to score frames processed elsewhere (other ranks of a ``torchrun``
        job), combine their :meth:`state` first with :meth:`load_state` (the engine does this).

        Keys are ``"<mode>/<category name | mean>/<metric>"`` with metric in ``iou25, iou50, iou75,
        5deg2cm, 5deg5cm, 10deg2cm, 10deg5cm, 10deg10cm``; values are AP fractions in [0, 1]; absent
        categories are left out. The full curves are in :attr:`results` (one :class:`NOCSMetrics` per
        mode).
        """
        acc_all, num_frames = self._acc, self._num_frames
        out: dict[str, float] = {}
        T, D, S = len(self.iou_thresholds), len(self.degree_thresholds), len(self.shift_thresholds)
        for mode in self.modes:
            C = len(self.category_ids)
            iou_ap = np.full((C, T), np.nan)
            pose_ap = np.full((C, D, S), np.nan)
            num_gt = np.zeros(C, np.int64)
            num_pred = np.zeros(C, np.int64)
            for k, c in enumerate(self.category_ids):
                acc = acc_all[mode][c]
                num_gt[k], num_pred[k] = acc.num_gt, acc.num_pred
                if acc.num_gt == 0:
                    continue
                iou_ap[k] = voc_ap(_cat(acc.iou_tp, (T, 0)), _cat(acc.iou_scores, (0,)), acc.num_gt)
                if acc.pose_num_gt == 0:
                    pose_ap[k] = 0.0  # published code: NaN (0/0 recall); see module docstring
                else:
                    pose_ap[k] = voc_ap(_cat(acc.pose_tp, (D, S, 0)), _cat(acc.pose_scores, (0,)),
                                        acc.pose_num_gt)
            names = tuple(self.categories[c].name for c in self.category_ids)
            res = NOCSMetrics(mode, self.category_ids, names, self.iou_thresholds.copy(),
                              self.degree_thresholds.copy(), self.shift_thresholds.copy(), iou_ap, pose_ap,
                              num_gt, num_pred, num_frames)
            self.results[mode] = res
            out.update(res.flat())
        return out


def _merge(parts: list[dict[str, dict[int, _Accumulator]]]) -> dict[str, dict[int, _Accumulator]]:
    """Concatenate the accumulators of several evaluators (in order)."""
    merged = {m: {c: _Accumulator() for c in parts[0][m]} for m in parts[0]}
    for part in parts:
        for m, per_cat in part.items():
            for c, a in per_cat.items():
                t = merged[m][c]
                t.iou_tp += a.iou_tp
                t.iou_scores += a.iou_scores
                t.pose_tp += a.pose_tp
                t.pose_scores += a.pose_scores
                t.num_gt += a.num_gt
                t.num_pred += a.num_pred
                t.pose_num_gt += a.pose_num_gt
    return merged


def _cat(parts: list[np.ndarray], empty_shape: tuple[int, ...]) -> np.ndarray:
    return np.concatenate(parts, axis=-1) if parts else np.zeros(empty_shape)
