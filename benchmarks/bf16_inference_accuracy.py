"""Accuracy and speed of bf16 inference (``Predictor(precision="bf16")``, ``demopose predict --precision bf16``):
PyTorch fp32 against PyTorch under bfloat16 autocast, the same frames through the same inference path.

Like ``benchmarks/onnx_int8_accuracy.py``: ground-truth masks, point sampling and pooling seeded per frame, so
both precisions see identical inputs (:func:`demopose.pipeline.run_inference`). Reported per precision:
the NOCS mAPs (``nocs`` IoU, mean over categories), the per-instance deviation of the bf16 poses from the fp32
ones, and the pose stage's wall time per frame (median over frames, after one warm-up frame).

Command behind ``benchmarks/results/bf16_inference_accuracy.json`` / ``.md``::

    python benchmarks/bf16_inference_accuracy.py --checkpoint checkpoints/gpv_synth_small.pt \\
        --data DATA --subset real_test --frames 100
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

METRICS = ("iou25", "iou50", "iou75", "5deg2cm", "5deg5cm", "10deg2cm", "10deg5cm", "10deg10cm")
HERE = Path(__file__).resolve().parent


def _int8_script():
    spec = importlib.util.spec_from_file_location("onnx_int8_accuracy", HERE / "onnx_int8_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Timed:
    """A frame sequence that records the time between consecutive frame requests (one frame's inference)."""

    def __init__(self, frames):
        self.frames, self.times, self._last = frames, [], None

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i):
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        frame = self.frames[i]
        self._last = time.perf_counter()
        return frame


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/gpv_synth_small.pt")
    p.add_argument("--data", required=True, help="NOCS-layout dataset root")
    p.add_argument("--subset", default="real_test")
    p.add_argument("--frames", type=int, default=100, help="evaluated frames (evenly spread; 0: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/bf16_inference_accuracy.json")
    args = p.parse_args(argv)

    from demopose.benchmark.latency import machine_description
    from demopose.categories import get_table
    from demopose.data.nocs import NOCSDataset
    from demopose.engine.build import limit_frames
    from demopose.engine.checkpoint import load_model
    from demopose.engine.precision import autocast
    from demopose.evaluation import NOCSEvaluator
    from demopose.evaluation.results import iter_results
    from demopose.io import write_json_atomic, write_text_atomic
    from demopose.pipeline import gt_instances, run_inference

    deviation = _int8_script()._deviation
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    table = model.categories
    frames = NOCSDataset(args.data, args.subset, categories=get_table(table.name), load_nocs=False)
    idx = limit_frames(len(frames), args.frames)
    load = os.getloadavg()
    rows, preds = {}, {}
    with tempfile.TemporaryDirectory(prefix="demopose-bf16-") as tmp:
        for precision in ("fp32", "bf16"):
            ev = NOCSEvaluator(table, iou_mode="nocs")
            timed = _Timed(frames)
            res_dir = Path(tmp) / precision
            with autocast(precision, "cpu"):
                metrics = run_inference(model, timed, gt_instances, ev, results_dir=res_dir, seed=args.seed,
                                        device="cpu", progress=False, indices=idx)
            preds[precision] = {r.image_path: r.pred for r in iter_results(res_dir)}
            rows[precision] = {"map": {k: metrics[f"nocs/mean/{k}"] for k in METRICS},
                               "ms_per_frame": statistics.median(timed.times[1:]) * 1000}
            print(f"{precision}: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in rows[precision]["map"].items())
                  + f"; {rows[precision]['ms_per_frame']:.1f} ms/frame", flush=True)
    rows["bf16"]["vs_fp32"] = deviation(preds["fp32"], preds["bf16"])
    rows["bf16"]["map_delta_points"] = {k: round(100 * (rows["bf16"]["map"][k] - rows["fp32"]["map"][k]), 2)
                                        for k in METRICS}
    doc = {
        "schema": "demopose.bf16_inference_accuracy/1",
        "command": "python benchmarks/bf16_inference_accuracy.py " + shlex.join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "checkpoint": args.checkpoint, "data": args.data, "subset": args.subset, "frames": len(idx),
        "masks": "gt", "iou_mode": "nocs", "threads": args.threads,
        "machine": machine_description(), "load_average_before": list(load),
        "load_average_after": list(os.getloadavg()),
        "precisions": rows,
    }
    out = Path(args.out)
    write_json_atomic(out, doc)
    dev = rows["bf16"]["vs_fp32"]
    md = [f"# bf16 inference: `{args.checkpoint}`", "",
          f"{len(idx)} frames of `{args.data}` ({args.subset}), ground-truth masks, NOCS mAP in % (`nocs` IoU, mean "
          f"over categories); deviation = per-instance difference of the bf16 pose from the fp32 pose on the same "
          f"inputs. {args.threads} thread(s); machine: {doc['machine']['cpu']} "
          f"({', '.join(doc['machine']['cpu_flags'])}), torch {doc['machine']['torch']}; load average {load[0]:.1f}. "
          "Time: per frame, instance sampling + network + scoring (frame decoding excluded), median.", "",
          f"Command: `{doc['command']}`", "",
          "| precision | " + " | ".join(METRICS) + " | ms / frame |",
          "|---" * (len(METRICS) + 2) + "|"]
    for name, r in rows.items():
        md.append(f"| {name} | " + " | ".join(f"{100 * r['map'][k]:.1f}" for k in METRICS)
                  + f" | {r['ms_per_frame']:.1f} |")
    rot = " / ".join(f"{dev[f'rotation_deg_{q}']:.2g}" for q in ("median", "p95", "max"))
    trans = " / ".join(f"{dev[f'translation_mm_{q}']:.2g}" for q in ("median", "p95", "max"))
    md += ["", f"bf16 against fp32 (median / p95 / max): rotation {rot}°, translation {trans} mm, size max "
           f"{dev['size_mm_max']:.2g} mm ({dev['instances']} instances).", ""]
    write_text_atomic(out.with_suffix(".md"), "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
