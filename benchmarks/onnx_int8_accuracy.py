"""Accuracy cost of ONNX export and int8 quantisation: torch fp32 vs onnxruntime fp32 vs onnxruntime int8.

The checkpoint is exported (``demopose.export``), quantised statically (calibrated on ``--calib-frames`` frames of
the training split) and dynamically, and every version runs the same frames through the same inference path
(:func:`demopose.pipeline.run_inference`: ground-truth masks, point sampling and pooling seeded per frame,
so the backends see identical inputs). Reported per backend: the NOCS mAPs (``nocs`` IoU mode, mean over
categories) and the per-instance deviation of its poses from the PyTorch fp32 poses. "torch fp32" is PyTorch as it
runs by default: on CPU its compiled kNN kernel gives the neighbour search the ONNX graph records (exact
difference-form distances), so the exported fp32 graph matches it to float rounding. "torch fp32, matmul kNN" is
PyTorch with the matrix-multiply neighbour search it runs where the kernel does not (GPU, no C compiler;
``exact_distances(False)``), which can differ on real depth by a swapped near-equidistant neighbour.

Command behind ``benchmarks/results/onnx_int8_accuracy.json`` / ``.md``::

    OMP_NUM_THREADS=1 python benchmarks/onnx_int8_accuracy.py --checkpoint checkpoints/gpv_synth_small.pt \\
        --data /work/data/synth_gpv --subset real_test --frames 100 --calib-frames 32
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

METRICS = ("iou25", "iou50", "iou75", "5deg2cm", "5deg5cm", "10deg2cm", "10deg5cm", "10deg10cm")


def _rotation_deg(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between rotation batches ``(M, 3, 3)``."""
    cos = (np.einsum("mij,mij->m", Ra, Rb) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _deviation(ref: dict, got: dict) -> dict[str, float]:
    """Per-instance pose differences of ``got`` from ``ref`` (frame id -> PoseSet), over matching frames."""
    rot, tr, sz = [], [], []
    for k, a in ref.items():
        b = got[k]
        if len(a) != len(b) or not np.array_equal(a.class_ids, b.class_ids):
            raise RuntimeError(f"frame {k}: the backends estimated different instances")
        if len(a) == 0:
            continue
        rot.append(_rotation_deg(a.R, b.R))
        tr.append(np.linalg.norm(a.t - b.t, axis=1) * 1000)
        sz.append(np.abs(a.size - b.size).max(axis=1) * 1000)
    out = {"instances": int(sum(len(r) for r in rot))}
    for name, vals in (("rotation_deg", rot), ("translation_mm", tr), ("size_mm", sz)):
        v = np.concatenate(vals)
        out |= {f"{name}_median": float(np.median(v)), f"{name}_p95": float(np.percentile(v, 95)),
                f"{name}_max": float(v.max())}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/gpv_synth_small.pt")
    p.add_argument("--data", default="/work/data/synth_gpv", help="NOCS-layout dataset root")
    p.add_argument("--subset", default="real_test")
    p.add_argument("--frames", type=int, default=100, help="evaluated frames (evenly spread; 0: all)")
    p.add_argument("--calib-subset", default="real_train")
    p.add_argument("--calib-frames", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch and onnxruntime intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/onnx_int8_accuracy.json")
    args = p.parse_args(argv)

    import onnxruntime

    from demopose.benchmark.latency import machine_description
    from demopose.categories import get_table
    from demopose.data.nocs import NOCSDataset
    from demopose.engine.build import limit_frames
    from demopose.engine.checkpoint import load_model
    from demopose.evaluation import NOCSEvaluator
    from demopose.evaluation.results import iter_results
    from demopose.export import export_checkpoint, load_ort_model
    from demopose.export.quantize import calibration_feeds, quantize_graph
    from demopose.io import write_json_atomic, write_text_atomic
    from demopose.layers.knn import exact_distances
    from demopose.native import knn as native_knn
    from demopose.pipeline import gt_instances, run_inference

    torch.set_num_threads(args.threads)
    command = "OMP_NUM_THREADS=1 python benchmarks/onnx_int8_accuracy.py " + shlex.join(argv or sys.argv[1:])
    model = load_model(args.checkpoint)
    table = model.categories
    frames = NOCSDataset(args.data, args.subset, categories=get_table(table.name), load_nocs=False)
    idx = limit_frames(len(frames), args.frames)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="demopose-int8-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        fp32 = export_checkpoint(args.checkpoint, tmp / "model.onnx")["pose"]
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        feeds = calibration_feeds(fp32, args.data, args.calib_subset, args.calib_frames, args.seed)
        static = quantize_graph(fp32, tmp / "model.int8.onnx", "static", feeds)
        quant_s = time.perf_counter() - t0
        dynamic = quantize_graph(fp32, tmp / "model.int8dyn.onnx", "dynamic")
        cpu = ["CPUExecutionProvider"]
        backends = {  # name: (model, PyTorch neighbour search: None the default, False the matrix-multiply form)
            "torch fp32": (model, None),
            "torch fp32, matmul kNN": (model, False),
            "onnxruntime fp32": (load_ort_model(fp32, cpu, args.threads), None),
            "onnxruntime int8 static": (load_ort_model(static, cpu, args.threads), None),
            "onnxruntime int8 dynamic": (load_ort_model(dynamic, cpu, args.threads), None),
        }
        rows, preds = {}, {}
        for name, (m, exact) in backends.items():
            ev = NOCSEvaluator(table, iou_mode="nocs")
            res_dir = tmp / name.replace(" ", "_").replace(",", "")
            t0 = time.perf_counter()
            with exact_distances(exact) if exact is not None else contextlib.nullcontext():
                metrics = run_inference(m, frames, gt_instances, ev, results_dir=res_dir, seed=args.seed,
                                        device="cpu", progress=True, indices=idx)
            wall = time.perf_counter() - t0
            preds[name] = {r.image_path: r.pred for r in iter_results(res_dir)}
            rows[name] = {"map": {k: metrics[f"nocs/mean/{k}"] for k in METRICS}, "wall_s": round(wall, 1)}
            print(f"{name}: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in rows[name]["map"].items()))
        for name in backends:
            rows[name]["vs_torch_fp32"] = _deviation(preds["torch fp32"], preds[name])
            rows[name]["vs_torch_fp32_matmul_knn"] = _deviation(preds["torch fp32, matmul kNN"], preds[name])
            rows[name]["map_delta_points"] = {k: round(100 * (rows[name]["map"][k] - rows["torch fp32"]["map"][k]), 2)
                                              for k in METRICS}
    doc = {
        "schema": "demopose.onnx_int8_accuracy/1",
        "command": command,
        "checkpoint": args.checkpoint,
        "data": args.data, "subset": args.subset, "frames": len(idx), "masks": "gt", "iou_mode": "nocs",
        "calibration": {"subset": args.calib_subset, "frames": args.calib_frames, "batches": len(feeds),
                        "method": "MinMax, QDQ, int8 weights per channel + uint8 activations, Conv/Gemm/MatMul "
                                  "with constant weights summing >= 16 terms only; a quantised layer's input is its "
                                  "own copy where other nodes read the same value (they keep float32)"},
        "threads": args.threads,
        "torch_knn_default": "compiled exact kernel" if native_knn.available() else "matrix-multiply form",
        "machine": machine_description() | {"onnxruntime": onnxruntime.__version__, "load_average_1min": load},
        "export_s": round(export_s, 1), "calibrate_and_quantize_s": round(quant_s, 1),
        "backends": rows,
    }
    out = Path(args.out)
    write_json_atomic(out, doc)
    write_text_atomic(out.with_suffix(".md"), _markdown(doc))
    print(_markdown(doc))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def _markdown(doc: dict) -> str:
    head = ("| backend | " + " | ".join(METRICS) + " | rot. dev. median / p95 / max (°) | "
            "transl. dev. median / p95 / max (mm) | size dev. max (mm) | max rot. / transl. dev. from torch "
            "matmul kNN (° / mm) |")
    lines = [
        f"# ONNX / int8 accuracy cost: `{doc['checkpoint']}`",
        "",
        f"{doc['frames']} frames of `{doc['data']}` ({doc['subset']}), ground-truth masks, NOCS mAP in % "
        f"(`{doc['iou_mode']}` IoU, mean over categories); deviation = per-instance difference from the PyTorch fp32 "
        f"pose on the same inputs ({next(iter(doc['backends'].values()))['vs_torch_fp32']['instances']} instances). "
        f"int8 static: calibrated on {doc['calibration']['frames']} frames of {doc['calibration']['subset']} "
        f"({doc['calibration']['method']}). {doc['threads']} thread(s); machine: {doc['machine']['cpu']}, "
        f"{doc['machine']['cores']} cores, torch {doc['machine']['torch']}, onnxruntime "
        f"{doc['machine']['onnxruntime']}. PyTorch's kNN by default: {doc['torch_knn_default']}.",
        "",
        f"Command: `{doc['command']}`",
        "",
        head,
        "|" + "---|" * (len(METRICS) + 5),
    ]
    for name, r in doc["backends"].items():
        d, e = r["vs_torch_fp32"], r["vs_torch_fp32_matmul_knn"]
        cells = [f"{100 * r['map'][k]:.1f}" for k in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | {d['rotation_deg_median']:.2g} / {d['rotation_deg_p95']:.2g} / {d['rotation_deg_max']:.2g}"
                     f" | {d['translation_mm_median']:.2g} / {d['translation_mm_p95']:.2g} / "
                     f"{d['translation_mm_max']:.2g} | {d['size_mm_max']:.2g} | "
                     f"{e['rotation_deg_max']:.2g} / {e['translation_mm_max']:.2g} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
