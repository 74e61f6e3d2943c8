"""The result of one NOCS evaluation in one IoU mode: full AP curves plus the headline numbers.

AP values are fractions in [0, 1] (the printed table shows percent). A category without any ground
truth in the evaluated frames is *absent*: its curves are NaN here, it is left out of the flat metric
dict and of the mean, and it is ``null`` in JSON and ``-`` in the table. The mean is the plain mean
over the present categories (the published code averages all six and gives NaN when one is absent;
with every category present the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_DEGREE_THRESHOLDS",
    "DEFAULT_IOU_THRESHOLDS",
    "DEFAULT_SHIFT_THRESHOLDS",
    "HEADLINE_IOU",
    "HEADLINE_METRICS",
    "HEADLINE_POSE",
    "NOCSMetrics",
]

# Grids of GPV-Pose / HS-Pose evaluate.py (notes/depth_and_eval.md §4.3); the published
# compute_degree_cm_mAP always appends 360° and 100 cm, so "5deg" alone is (5°, 100 cm).
DEFAULT_IOU_THRESHOLDS = tuple(i / 100 for i in range(101))
DEFAULT_DEGREE_THRESHOLDS = tuple(float(d) for d in range(61))
DEFAULT_SHIFT_THRESHOLDS = tuple(i / 2 for i in range(21))

HEADLINE_IOU = {"iou25": 0.25, "iou50": 0.5, "iou75": 0.75}
"""Headline IoU metrics: name -> IoU threshold (strict ``>``)."""

HEADLINE_POSE = {"5deg2cm": (5.0, 2.0), "5deg5cm": (5.0, 5.0), "10deg2cm": (10.0, 2.0),
                 "10deg5cm": (10.0, 5.0), "10deg10cm": (10.0, 10.0)}
"""Headline pose metrics: name -> (degrees, centimetres)."""

HEADLINE_METRICS = tuple(HEADLINE_IOU) + tuple(HEADLINE_POSE)


def _index(grid: np.ndarray, value: float) -> int | None:
    hits = np.nonzero(np.isclose(grid, value, rtol=0, atol=1e-9))[0]
    return int(hits[0]) if len(hits) else None


def _value(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


@dataclass
class NOCSMetrics:
    """AP curves of one IoU mode.

    Attributes:
        iou_mode: ``"nocs"`` or ``"exact"``.
        category_ids: ``(C,)`` evaluated category ids; category_names: their names.
        iou_thresholds: ``(T,)``; degree_thresholds: ``(D,)`` (last = 360); shift_thresholds: ``(S,)``
            centimetres (last = 100).
        iou_ap: ``(C, T)`` AP per category and IoU threshold (NaN: category absent).
        pose_ap: ``(C, D, S)`` AP per category on the (degree, cm) grid (NaN: category absent).
        num_gt, num_pred: ``(C,)`` ground truths and predictions seen per category.
        num_frames: frames processed.
    """

    iou_mode: str
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    iou_thresholds: np.ndarray
    degree_thresholds: np.ndarray
    shift_thresholds: np.ndarray
    iou_ap: np.ndarray
    pose_ap: np.ndarray
    num_gt: np.ndarray
    num_pred: np.ndarray
    num_frames: int

    @property
    def present(self) -> np.ndarray:
        """``(C,)`` bool: categories with at least one ground truth."""
        return self.num_gt > 0

    @property
    def mean_iou_ap(self) -> np.ndarray:
        """``(T,)`` mean over present categories (NaN when none is present)."""
        return self._mean(self.iou_ap)

    @property
    def mean_pose_ap(self) -> np.ndarray:
        """``(D, S)`` mean over present categories (NaN when none is present)."""
        return self._mean(self.pose_ap)

    def _mean(self, a: np.ndarray) -> np.ndarray:
        if not self.present.any():
            return np.full(a.shape[1:], np.nan)
        return a[self.present].mean(axis=0)

    def _rows(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        rows = [(n, self.iou_ap[c], self.pose_ap[c]) for c, n in enumerate(self.category_names)]
        return rows + [("mean", self.mean_iou_ap, self.mean_pose_ap)]

    def headline(self) -> dict[str, dict[str, float] | None]:
        """``{category name | "mean": {metric: AP} or None when absent}`` for :data:`HEADLINE_METRICS`."""
        out: dict[str, dict[str, float] | None] = {}
        for name, iou_ap, pose_ap in self._rows():
            if not np.isfinite(iou_ap).any():
                out[name] = None
                continue
            vals: dict[str, float] = {}
            for key, thr in HEADLINE_IOU.items():
                k = _index(self.iou_thresholds, thr)
                if k is not None:
                    vals[key] = float(iou_ap[k])
            for key, (deg, cm) in HEADLINE_POSE.items():
                d, s = _index(self.degree_thresholds, deg), _index(self.shift_thresholds, cm)
                if d is not None and s is not None:
                    vals[key] = float(pose_ap[d, s])
            out[name] = vals
        return out

    def flat(self) -> dict[str, float]:
        """Flat ``{"<mode>/<category|mean>/<metric>": AP}``; absent categories are left out."""
        return {f"{self.iou_mode}/{name}/{key}": v
                for name, vals in self.headline().items() if vals is not None for key, v in vals.items()}

    def rotation_curves(self) -> tuple[np.ndarray, np.ndarray]:
        """``(degrees (D-1,), AP (C+1, D-1))`` at the loosest translation threshold (100 cm); last row mean."""
        ap = np.concatenate([self.pose_ap[:, :-1, -1], self.mean_pose_ap[None, :-1, -1]])
        return self.degree_thresholds[:-1], ap

    def translation_curves(self) -> tuple[np.ndarray, np.ndarray]:
        """``(cm (S-1,), AP (C+1, S-1))`` at the loosest rotation threshold (360°); last row mean."""
        ap = np.concatenate([self.pose_ap[:, -1, :-1], self.mean_pose_ap[None, -1, :-1]])
        return self.shift_thresholds[:-1], ap

    def iou_curves(self) -> tuple[np.ndarray, np.ndarray]:
        """``(IoU thresholds (T,), AP (C+1, T))``; last row mean."""
        return self.iou_thresholds, np.concatenate([self.iou_ap, self.mean_iou_ap[None]])

    def to_json(self) -> dict:
        """JSON-ready dict (see :mod:`demopose.cli.eval` for the schema); absent values are None."""
        names = list(self.category_names) + ["mean"]

        def curves(x: np.ndarray, ap: np.ndarray) -> dict:
            return {"thresholds": [float(v) for v in x],
                    "ap": {n: (None if not np.isfinite(row).any() else [_value(v) for v in row])
                           for n, row in zip(names, ap)}}

        return {
            "iou_mode": self.iou_mode,
            "num_frames": int(self.num_frames),
            "categories": {n: {"id": int(i), "num_gt": int(g), "num_pred": int(p)}
                           for n, i, g, p in zip(self.category_names, self.category_ids, self.num_gt,
                                                 self.num_pred)},
            "headline": self.headline(),
            "curves": {"iou": curves(*self.iou_curves()),
                       "rotation_deg": curves(*self.rotation_curves()),
                       "translation_cm": curves(*self.translation_curves())},
        }
