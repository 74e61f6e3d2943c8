"""2D detection metrics of the monocular detector: per-class box AP at IoU 0.5 and keypoint pixel error.

Matching per frame and class: predictions by decreasing score, each takes the unmatched ground truth of
highest box IoU if that IoU is >= 0.5 (a true positive) — the usual greedy VOC rule; AP is the VOC
all-point AP (:func:`demopose.evaluation.ap.voc_ap`). The keypoint error is the mean Euclidean distance
(original-image pixels) over the 9 keypoints (8 cuboid corners, NOCS order, + centre) of each true
positive and its ground truth, averaged over all true positives.
"""

from __future__ import annotations

import numpy as np

from demopose.categories import CategoryTable
from demopose.evaluation.ap import voc_ap

__all__ = ["Detection2DEvaluator", "box_iou_np"]


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, 4)``, ``(M, 4)`` x1 y1 x2 y2 -> ``(N, M)`` IoU (NumPy)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return inter / np.maximum(union, 1e-12)


class Detection2DEvaluator:
    """``reset()`` / ``process(...)`` / ``evaluate() -> {"det2d/<name>/ap50", "det2d/mean/ap50",
    "det2d/kpt_px"}`` (values in [0, 1] for AP, pixels for the keypoint error)."""

    def __init__(self, categories: CategoryTable, iou_threshold: float = 0.5) -> None:
        self.categories = categories
        self.iou_threshold = iou_threshold
        self.reset()

    def reset(self) -> None:
        self._tp: dict[int, list[np.ndarray]] = {c: [] for c in self.categories.ids}
        self._scores: dict[int, list[np.ndarray]] = {c: [] for c in self.categories.ids}
        self._num_gt = dict.fromkeys(self.categories.ids, 0)
        self._kpt_err: list[float] = []

    def process(self, boxes: np.ndarray, class_ids: np.ndarray, scores: np.ndarray, keypoints: np.ndarray,
                gt_boxes: np.ndarray, gt_class_ids: np.ndarray, gt_keypoints: np.ndarray) -> None:
        """One frame: predictions ``boxes (M, 4)``, ``class_ids (M,)`` 1-based, ``scores (M,)``,
        ``keypoints (M, 9, 2)``; ground truth ``gt_boxes (G, 4)``, ``gt_class_ids (G,)``,
        ``gt_keypoints (G, 9, 2)`` — all original-image pixels."""
        class_ids, gt_class_ids = np.asarray(class_ids).reshape(-1), np.asarray(gt_class_ids).reshape(-1)
        scores = np.asarray(scores, np.float64).reshape(-1)
        for c in self.categories.ids:
            p = np.nonzero(class_ids == c)[0]
            g = np.nonzero(gt_class_ids == c)[0]
            self._num_gt[c] += len(g)
            tp = np.zeros(len(p), dtype=bool)
            if len(p) and len(g):
                iou = box_iou_np(np.asarray(boxes)[p], np.asarray(gt_boxes)[g])
                used = np.zeros(len(g), dtype=bool)
                for i in np.argsort(-scores[p], kind="stable"):
                    cand = np.where(used, -1.0, iou[i])
                    j = int(np.argmax(cand))
                    if cand[j] >= self.iou_threshold:
                        used[j] = True
                        tp[i] = True
                        err = np.linalg.norm(np.asarray(keypoints)[p[i]] - np.asarray(gt_keypoints)[g[j]], axis=-1)
                        self._kpt_err.append(float(err.mean()))
            self._tp[c].append(tp)
            self._scores[c].append(scores[p])

    def state(self) -> dict:
        """What this evaluator has accumulated (picklable), for :meth:`load_state`."""
        return {"tp": self._tp, "scores": self._scores, "num_gt": self._num_gt, "kpt_err": self._kpt_err}

    def load_state(self, *states: dict) -> None:
        """Replace what this evaluator accumulated by the concatenation of ``states`` (:meth:`state`, in order),
        e.g. the states of the evaluators of every rank."""
        self.reset()
        for st in states:
            for c in self.categories.ids:
                self._tp[c] += st["tp"].get(c, [])
                self._scores[c] += st["scores"].get(c, [])
                self._num_gt[c] += st["num_gt"].get(c, 0)
            self._kpt_err += st["kpt_err"]

    def evaluate(self) -> dict[str, float]:
        out: dict[str, float] = {}
        aps = []
        for c in self.categories.ids:
            tp = np.concatenate(self._tp[c]) if self._tp[c] else np.zeros(0, bool)
            sc = np.concatenate(self._scores[c]) if self._scores[c] else np.zeros(0)
            ap = float(voc_ap(tp, sc, self._num_gt[c])) if self._num_gt[c] else float("nan")
            out[f"det2d/{self.categories[c].name}/ap50"] = ap
            if self._num_gt[c]:
                aps.append(ap)
        out["det2d/mean/ap50"] = float(np.mean(aps)) if aps else float("nan")
        out["det2d/kpt_px"] = float(np.mean(self._kpt_err)) if self._kpt_err else float("nan")
        return out
