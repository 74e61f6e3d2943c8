"""Per-object errors and the share of ground-truth objects posed within a threshold ("N % within 10°/5 cm").

The AP metrics of the NOCS protocol (:mod:`demopose.evaluation.evaluator`) rank predictions by score and
match them one to one; this page answers a simpler question a user asks of one frame or a split: *for each
ground-truth object, how far off is the nearest prediction of its class?* (``../shared/MEASURE.md``: "for
each ground-truth object, the nearest same-class prediction"). Nearest means smallest translation
distance. The rotation error is the NOCS one (:func:`~demopose.evaluation.errors.rotation_error_deg`): the
geodesic angle, or the y-axis angle for bottle, bowl, can and a mug whose handle is not visible. An object
with no prediction of its class is *missed* and counts as outside every threshold.

Thresholds are ``(degrees, centimetres)`` pairs, both inclusive (``≤``), named like the AP metrics
(``10deg5cm``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from demopose.categories import CategoryTable
from demopose.evaluation.errors import rotation_error_deg, translation_error_cm
from demopose.geometry import PoseSet

__all__ = ["OBJECT_THRESHOLDS", "TABLE_THRESHOLDS", "ObjectTally", "object_errors"]

OBJECT_THRESHOLDS = {"5deg2cm": (5.0, 2.0), "5deg5cm": (5.0, 5.0), "10deg2cm": (10.0, 2.0),
                     "10deg5cm": (10.0, 5.0), "10deg10cm": (10.0, 10.0)}
"""Name -> (degrees, centimetres) of the thresholds :class:`ObjectTally` counts."""

TABLE_THRESHOLDS = ("10deg5cm", "5deg5cm")
"""The thresholds of the per-object table's yes/no columns (:meth:`ObjectTally.format_rows`), those the issue
targets and ``../shared/MEASURE.md`` quote."""


def object_errors(pred: PoseSet, gt: PoseSet, categories: CategoryTable) -> list[dict]:
    """For every ground-truth object of one frame, the errors of the nearest same-class prediction.

    Args:
        pred: the frame's predictions (any number, any score).
        gt: its ground truth, with ``handle_visible``.
        categories: the category table (symmetry flags, names).

    Returns:
        One dict per ground-truth object, in ``gt`` order: ``gt_index``, ``category``, ``found`` (a prediction
        of its class exists), and when found ``pred_index``, ``rotation_deg``, ``translation_cm``, ``score``
        and ``y_symmetric`` (scored on the y axis only).
    """
    out = []
    for g in range(len(gt)):
        cid = int(gt.class_ids[g])
        sym = categories.is_y_symmetric(cid, bool(gt.handle_visible[g]))
        row: dict = {"gt_index": g, "category": categories[cid].name, "found": False}
        same = np.nonzero(pred.class_ids == cid)[0]
        if len(same):
            t = translation_error_cm(pred.t[same], gt.t[g:g + 1])[:, 0]
            k = int(np.argmin(t))
            r = rotation_error_deg(pred.R[same[k]:same[k] + 1], gt.R[g:g + 1], np.array([sym]))[0, 0]
            row.update(found=True, pred_index=int(same[k]), rotation_deg=round(float(r), 2),
                       translation_cm=round(float(t[k]), 2), score=round(float(pred.scores[same[k]]), 4),
                       y_symmetric=sym)
        out.append(row)
    return out


@dataclass
class ObjectTally:
    """Accumulates :func:`object_errors` over frames and counts the objects within each threshold.

    Args:
        categories: the category table.
        thresholds: name -> ``(degrees, cm)``; default :data:`OBJECT_THRESHOLDS`.
    """

    categories: CategoryTable
    thresholds: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(OBJECT_THRESHOLDS))
    rows: list[dict] = field(default_factory=list)

    def add(self, pred: PoseSet, gt: PoseSet, frame: str = "") -> list[dict]:
        """Score one frame; returns (and keeps) its rows, each with ``frame`` added."""
        rows = [{"frame": frame, **r} for r in object_errors(pred, gt, self.categories)]
        self.rows.extend(rows)
        return rows

    def within(self, row: dict, name: str) -> bool:
        """Whether one row (of :meth:`add`) lies within threshold ``name`` (a missed object never does)."""
        deg, cm = self.thresholds[name]
        return bool(row["found"] and row["rotation_deg"] <= deg and row["translation_cm"] <= cm)

    def _hits(self, rows: list[dict]) -> dict[str, int]:
        return {name: sum(1 for r in rows if self.within(r, name)) for name in self.thresholds}

    def summary(self) -> dict:
        """``{"objects", "found", "within": {name: count}, "fraction": {name: share in [0, 1] or None without objects},
        "per_category": {name: {"objects", "found", "within"}}}`` over every frame added."""
        n = len(self.rows)
        within = self._hits(self.rows)
        per_cat = {}
        for name in sorted({r["category"] for r in self.rows}):
            rows = [r for r in self.rows if r["category"] == name]
            per_cat[name] = {"objects": len(rows), "found": sum(r["found"] for r in rows), "within": self._hits(rows)}
        return {"objects": n, "found": sum(r["found"] for r in self.rows), "within": within,
                "fraction": {k: (v / n if n else None) for k, v in within.items()},
                "per_category": per_cat}

    def format(self) -> str:
        """A short text report: one line per threshold, then found / missed objects."""
        s = self.summary()
        n = s["objects"]
        lines = [f"objects within threshold (nearest same-class prediction per ground-truth object, {n} objects):"]
        for name, (deg, cm) in self.thresholds.items():
            k = s["within"][name]
            lines.append(f"  {deg:g}°/{cm:g} cm: {k}/{n} ({100 * k / max(n, 1):.1f} %)")
        lines.append(f"  found (a prediction of the class): {s['found']}/{n}")
        return "\n".join(lines)

    def format_rows(self, columns: tuple[str, ...] = TABLE_THRESHOLDS) -> str:
        """Every ground-truth object as one line: frame, category, rotation error (°), translation error (cm), a
        yes/no column per threshold of ``columns`` and whether a prediction of its class was found.

        A ``*`` after the rotation error marks an object scored on its y axis only (bottle, bowl, can, a mug
        whose handle is not visible); a missed object shows ``-`` for both errors.
        """
        heads = []
        for name in columns:
            deg, cm = self.thresholds[name]
            heads.append(f"≤{deg:g}°/{cm:g}cm")
        frame_w = max([5] + [len(str(r["frame"])) for r in self.rows])
        cat_w = max([8] + [len(r["category"]) for r in self.rows])
        col_w = [max(len(h), 3) for h in heads]
        head = (f"{'frame':<{frame_w}}  {'category':<{cat_w}}  {'rot °':>7}  {'trans cm':>8}  "
                + "  ".join(f"{h:>{w}}" for h, w in zip(heads, col_w)) + "  object")
        lines = ["per-object errors (each ground-truth object against the nearest prediction of its class; "
                 "* = scored on the y axis only):", head]
        for r in self.rows:
            if r["found"]:
                rot = f"{r['rotation_deg']:6.1f}" + ("*" if r.get("y_symmetric") else " ")
                trans = f"{r['translation_cm']:8.1f}"
            else:
                rot, trans = f"{'-':>6} ", f"{'-':>8}"
            marks = "  ".join(f"{'yes' if self.within(r, c) else 'no':>{w}}" for c, w in zip(columns, col_w))
            lines.append(f"{r['frame']:<{frame_w}}  {r['category']:<{cat_w}}  {rot}  {trans}  {marks}  "
                         f"{'found' if r['found'] else 'missed'}")
        return "\n".join(lines)
