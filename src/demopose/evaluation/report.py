"""Text table and JSON document of NOCS metrics (used by ``demopose eval`` and by training logs)."""

from __future__ import annotations

from demopose.evaluation.summary import HEADLINE_METRICS, NOCSMetrics

__all__ = ["MODE_DESCRIPTIONS", "SCHEMA", "format_table", "metrics_document"]

SCHEMA = "demopose.nocs_metrics/1"
"""Identifier of the ``metrics.json`` layout (documented in :mod:`demopose.cli.eval`)."""

MODE_DESCRIPTIONS = {
    "nocs": "legacy NOCS 3D IoU (axis-0 bug, unclipped arccos), comparable with published numbers",
    "exact": "exact oriented-box 3D IoU, clipped arccos",
}

_COLUMNS = {"iou25": "IoU25", "iou50": "IoU50", "iou75": "IoU75", "5deg2cm": "5°2cm", "5deg5cm": "5°5cm",
            "10deg2cm": "10°2cm", "10deg5cm": "10°5cm", "10deg10cm": "10°10cm"}


def format_table(result: NOCSMetrics) -> str:
    """The standard table: one row per category and the mean, AP in percent, ``-`` when absent."""
    head = result.headline()
    name_w = max(8, *(len(n) for n in head))
    cols = [_COLUMNS.get(k, k) for k in HEADLINE_METRICS]
    lines = [f"NOCS metrics, IoU mode '{result.iou_mode}': {MODE_DESCRIPTIONS.get(result.iou_mode, '')}"
             f" ({result.num_frames} frames, AP %)",
             f"{'category':<{name_w}} {'#gt':>6} {'#pred':>6} " + " ".join(f"{c:>7}" for c in cols)]
    counts = {n: (int(g), int(p)) for n, g, p in zip(result.category_names, result.num_gt, result.num_pred)}
    counts["mean"] = (int(result.num_gt.sum()), int(result.num_pred.sum()))
    for name, vals in head.items():
        g, p = counts[name]
        cells = [("-" if vals is None or k not in vals else f"{100 * vals[k]:.1f}") for k in HEADLINE_METRICS]
        lines.append(f"{name:<{name_w}} {g:>6} {p:>6} " + " ".join(f"{c:>7}" for c in cells))
    return "\n".join(lines)


def metrics_document(results: dict[str, NOCSMetrics], /, **info: object) -> dict:
    """The ``metrics.json`` document for one or both IoU modes (schema in :mod:`demopose.cli.eval`)."""
    flat: dict[str, float | None] = {}
    for mode, r in results.items():
        for name, vals in r.headline().items():
            for k in HEADLINE_METRICS:
                flat[f"{mode}/{name}/{k}"] = None if vals is None else vals.get(k)
    return {
        "schema": SCHEMA,
        **info,
        "iou_modes": list(results),
        "metrics": flat,
        "modes": {mode: {"description": MODE_DESCRIPTIONS.get(mode, ""), **r.to_json()}
                  for mode, r in results.items()},
    }
