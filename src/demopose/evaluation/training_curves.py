"""Training curves: the validation metrics and the loss of a run's ``metrics.jsonl`` against steps, as a PNG.

A run's ``metrics.jsonl`` (written by :class:`~demopose.engine.trainer.Trainer`) has one JSON object per logged
step: ``step``, the loss terms ``loss/<name>``, ``lr`` and, at validation steps, ``val/<mode>/<category>/<metric>``
(AP fractions in [0, 1]). Several files (a run continued in pieces) are read in order and merged by step, a
later file's record winning a step logged twice. The plot has two panels: the mean validation metrics in
percent, and the total loss (a moving average over ``smooth`` logged points, raw points faint behind it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_CURVE_METRICS", "plot_training_curves", "read_metrics_jsonl"]

DEFAULT_CURVE_METRICS = ("iou50", "iou75", "5deg5cm", "10deg5cm", "10deg10cm")
"""Mean validation metrics drawn by default (the ``nocs`` IoU mode)."""


def read_metrics_jsonl(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[dict]:
    """The records of one or more ``metrics.jsonl`` files, merged by step (later files win), sorted by step.

    Raises:
        FileNotFoundError: a missing file. ValueError: a line that is not a JSON object with a ``step``
            (names the file and line).
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    by_step: dict[int, dict] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such metrics.jsonl file")
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                step = int(rec["step"])
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: expected a JSON object with a 'step' ({e})") from None
            by_step[step] = {**by_step.get(step, {}), **rec}
    return [by_step[s] for s in sorted(by_step)]


def _series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    if not pts:
        return np.zeros(0), np.zeros(0)
    s, v = zip(*pts)
    return np.asarray(s, float), np.asarray(v, float)


def plot_training_curves(paths: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike,
                         metrics: Sequence[str] = DEFAULT_CURVE_METRICS, iou_mode: str = "nocs",
                         title: str | None = None, smooth: int = 10, dpi: int = 110) -> Path:
    """Draw a run's validation curves and loss into the PNG ``out`` (written atomically); returns its path.

    Args:
        paths: one or more ``metrics.jsonl`` files of one run (see :func:`read_metrics_jsonl`).
        metrics: headline metric names (``iou50``, ``10deg5cm`` …) of the mean row, drawn in percent; a name
            with a ``/`` is a validation key below ``val/`` as it is (e.g. ``det2d/mean/ap50``, the detector's 2D AP).
        iou_mode: ``nocs`` or ``exact`` (which validation records to draw).
        smooth: moving-average window of the loss, in logged points.

    Raises:
        ValueError: the files hold no loss and no validation record.
    """
    from demopose.evaluation.plots import pyplot, save_png

    plt = pyplot()
    records = read_metrics_jsonl(paths)
    curves = {m: _series(records, f"val/{m}" if "/" in m else f"val/{iou_mode}/mean/{m}") for m in metrics}
    ls, lv = _series(records, "loss/total")
    if not len(ls) and not any(len(s) for s, _ in curves.values()):
        raise ValueError(f"{paths}: no 'loss/total' and no 'val/{iou_mode}/mean/...' records to plot")
    fig, (ax_v, ax_l) = plt.subplots(1, 2, figsize=(13, 4.4))
    try:
        for m, (s, v) in curves.items():
            if len(s):
                ax_v.plot(s, 100 * v, marker="o", markersize=3, label=m)
        ax_v.set_title(f"validation, mean over categories (IoU mode: {iou_mode})")
        ax_v.set_xlabel("step")
        ax_v.set_ylabel("AP (%)")
        ax_v.set_ylim(0, 102)
        ax_v.grid(alpha=0.3)
        if any(len(s) for s, _ in curves.values()):
            ax_v.legend(loc="lower right", fontsize=8)
        if len(ls):
            ax_l.plot(ls, lv, color="tab:blue", alpha=0.25, linewidth=0.8)
            k = max(1, min(int(smooth), len(lv)))
            avg = np.convolve(lv, np.ones(k) / k, mode="valid")
            ax_l.plot(ls[k - 1:], avg, color="tab:blue", linewidth=1.6, label=f"moving average ({k})")
            ax_l.set_yscale("log")
            ax_l.legend(loc="upper right", fontsize=8)
        ax_l.set_title("training loss (total)")
        ax_l.set_xlabel("step")
        ax_l.grid(alpha=0.3, which="both")
        if title:
            fig.suptitle(title)
        return save_png(fig, out, dpi)
    finally:
        plt.close(fig)
