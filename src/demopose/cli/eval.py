"""Score NOCS-format results pickles with the NOCS protocol (REAL275 / CAMERA25 metrics).

RESULTS is a folder of results pickles (searched recursively, one frame per ``*.pkl``, as written by
NOCS, SPD, GPV-Pose/HS-Pose or ``demopose.evaluation.write_results_pkl``) or one pickle holding a list
of frames. Either pose convention is accepted (NOCS ``[s·R | t]`` + normalised scales, or GPV
``[R | t]`` + metric scales). The command prints the standard table per IoU mode and writes into
``--out``:

* ``metrics.json`` (schema below),
* ``ap_curves_<mode>.png``: AP versus 3D IoU, rotation and translation thresholds, one curve per
  category and the mean (like the NOCS paper's figure).

A results file that cannot be read, or that holds class ids outside the category table, is reported and
skipped; the other files are scored, the skipped ones are listed at the end and the exit code is 1.

IoU modes: ``nocs`` is the published legacy 3D IoU (axis-0 bug) that every REAL275/CAMERA25 paper
reports; ``exact`` is the true oriented-box IoU. Every number is labelled with its mode.

``metrics.json`` schema (``"schema": "demopose.nocs_metrics/1"``); AP values are fractions in [0, 1],
``null`` where a category has no ground truth (absent categories are not in the mean)::

    {
      "schema": "demopose.nocs_metrics/1",
      "results": "<RESULTS path>", "num_files": int, "category_table": "nocs_real",
      "iou_modes": ["nocs", "exact"],
      "metrics": {"<mode>/<category|mean>/<metric>": float | null, ...},
            # metric in iou25 iou50 iou75 5deg2cm 5deg5cm 10deg2cm 10deg5cm 10deg10cm
      "modes": {
        "<mode>": {
          "description": str, "iou_mode": str, "num_frames": int,
          "categories": {"<name>": {"id": int, "num_gt": int, "num_pred": int}},
          "headline": {"<name>|mean": {"<metric>": float} | null},
          "curves": {
            "iou":            {"thresholds": [0.0 .. 1.0],  "ap": {"<name>|mean": [float|null] | null}},
            "rotation_deg":   {"thresholds": [0 .. 60],     "ap": {...}},   # at 100 cm
            "translation_cm": {"thresholds": [0.0 .. 10.0], "ap": {...}}    # at 360 degrees
          }
        }
      }
    }
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

HELP = "score NOCS results pickles: 3D IoU and pose mAP table, metrics.json and AP-curve plots"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="RESULTS", help="folder of results *.pkl (or one pkl)")
    parser.add_argument("--iou", default="both", choices=("nocs", "exact", "both"),
                        help="3D IoU mode: nocs (legacy, as published), exact (oriented boxes), or both")
    parser.add_argument("--categories", default=None,
                        help="comma-separated category names or ids to evaluate (default: all)")
    parser.add_argument("--table", default="nocs_real", help="category table (nocs_real, nocs_camera, housecat6d)")
    parser.add_argument("--out", default=None, help="output folder (default: ./eval_<RESULTS name>)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _category_ids(table, spec: str | None) -> list[int] | None:
    if not spec:
        return None
    ids = []
    for tok in (t.strip() for t in spec.split(",")):
        if not tok:
            continue
        try:
            ids.append(table[int(tok) if tok.isdigit() else tok].id)
        except KeyError as e:
            raise ValueError(f"--categories: {e.args[0]}") from None
    if not ids:
        raise ValueError(f"--categories: no category in {spec!r}")
    return ids


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from demopose.categories import get_table
    from demopose.evaluation import NOCSEvaluator, find_results, read_results_pkl
    from demopose.evaluation.object_hits import ObjectTally
    from demopose.evaluation.plots import plot_ap_curves
    from demopose.evaluation.report import format_table, metrics_document
    from demopose.io import write_json_atomic

    try:
        table = get_table(args.table)
    except KeyError as e:
        raise ValueError(f"--table: {e.args[0]}") from None
    files = find_results(args.results)
    out = Path(args.out) if args.out else Path(f"eval_{Path(args.results).resolve().name}")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: is a file, not a folder (choose another output folder)")
    out.mkdir(parents=True, exist_ok=True)  # fail on an unwritable output before the work, not after it
    evaluator = NOCSEvaluator(table, iou_mode=args.iou, category_ids=_category_ids(table, args.categories))
    tally = ObjectTally(table)
    skipped: list[str] = []
    n_frames = 0
    for path in tqdm(files, desc="eval", unit="file", disable=args.no_progress or None):
        try:  # a bad file is reported and skipped; the run goes on and fails at the end
            frames = read_results_pkl(path)
            for i, frame in enumerate(frames):
                _check_class_ids(frame, table, f"{path}[{i}]" if len(frames) > 1 else str(path))
        except (ValueError, FileNotFoundError) as e:
            skipped.append(str(e))
            log.error("skipped: %s", e)
            continue
        for frame in frames:
            evaluator.process(frame.pred, frame.gt)
            tally.add(frame.pred, frame.gt, frame.image_path)
        n_frames += len(frames)
    if not n_frames:
        raise ValueError(f"{args.results}: no readable results file ({len(skipped)} skipped: {skipped[0]})")
    evaluator.evaluate()
    for mode, result in evaluator.results.items():
        print(format_table(result))
        print()
        if not args.no_plots:
            plot_ap_curves(result, out / f"ap_curves_{mode}.png")
    print(tally.format())
    doc = metrics_document(evaluator.results, results=str(args.results), num_files=len(files) - len(skipped),
                           category_table=table.name, objects_within=tally.summary())
    write_json_atomic(out / "metrics.json", doc)
    write_json_atomic(out / "objects.json", {"summary": tally.summary(), "objects": tally.rows})
    print(f"wrote {out / 'metrics.json'}" + ("" if args.no_plots else f" and ap_curves_*.png in {out}"))
    if skipped:
        print(f"error: {len(skipped)} of {len(files)} results file(s) skipped (not in the numbers above):",
              file=sys.stderr)
        for msg in skipped:
            print(f"  {msg}", file=sys.stderr)
        return 1
    return 0


def _check_class_ids(frame, table, source: str) -> None:
    """Every ground-truth and predicted class id must be a category of ``table`` (0, -1 or 99 would be dropped
    silently or fail deep in the evaluator)."""
    for key, ids in (("gt_class_ids", frame.gt.class_ids), ("pred_class_ids", frame.pred.class_ids)):
        bad = sorted({int(c) for c in ids if int(c) not in table})
        if bad:
            raise ValueError(f"{source}: {key} holds {bad}, not categories of {table.name} (ids "
                             f"{table.ids[0]}..{table.ids[-1]}); wrong --table?")
