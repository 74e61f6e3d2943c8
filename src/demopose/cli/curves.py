"""Plot a training run's validation curves and loss against steps into a PNG.

Example::

    demopose curves runs/gpv_synth_small/metrics.jsonl --out docs/images/gpv_synth_small_curves.png

Several ``metrics.jsonl`` files (a run continued in pieces) are merged by step. The left panel shows the mean
validation AP of the chosen metrics (the ``val/<mode>/mean/<metric>`` records the trainer writes every
``train.eval_every`` steps), the right one the total training loss.
"""

from __future__ import annotations

import argparse

HELP = "plot a run's validation curves and training loss (metrics.jsonl) against steps into a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from demopose.evaluation.training_curves import DEFAULT_CURVE_METRICS

    parser.add_argument("metrics", nargs="+", help="metrics.jsonl file(s) of one run, in order")
    parser.add_argument("--out", "-o", default="curves.png", help="output PNG (default: curves.png)")
    parser.add_argument("--metric", action="append", dest="metric_names",
                        help="a mean validation metric to draw (repeatable; default: "
                             f"{' '.join(DEFAULT_CURVE_METRICS)})")
    parser.add_argument("--iou", default="nocs", choices=("nocs", "exact"), help="IoU mode of the curves")
    parser.add_argument("--title", help="figure title (default: the first file's folder name)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from demopose.evaluation.training_curves import DEFAULT_CURVE_METRICS, plot_training_curves

    title = args.title or Path(args.metrics[0]).resolve().parent.name
    out = plot_training_curves(args.metrics, args.out, metrics=args.metric_names or DEFAULT_CURVE_METRICS,
                               iou_mode=args.iou, title=title)
    print(f"wrote {out}")
    return 0
