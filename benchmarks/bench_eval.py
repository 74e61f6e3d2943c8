"""Speed of the NOCS evaluator on REAL275-sized synthetic frames.

Generates ``--frames`` frames (default 2,754, the REAL275 test size) with ~5 ground truths and ~6
predictions each (perturbed ground truths, a few false positives and misses), runs
:class:`demopose.evaluation.NOCSEvaluator` in each IoU mode and writes the timings to
``benchmarks/results/eval_speed.json``. Run: ``python benchmarks/bench_eval.py``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from demopose.categories import NOCS_REAL
from demopose.evaluation import NOCSEvaluator
from demopose.geometry import PoseSet, axis_angle_to_rotation_matrix, random_rotation
from demopose.io import write_json_atomic


def make_frames(n: int, seed: int = 0) -> list[tuple[PoseSet, PoseSet]]:
    """``n`` (pred, gt) pairs: ~5 GT per frame, each detected with prob 0.9 with a perturbed pose,
    plus 0-2 false positives."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    mean = NOCS_REAL.mean_sizes()
    frames = []
    for _ in range(n):
        G = int(rng.integers(3, 8))
        cls = rng.integers(1, 7, G)
        R = random_rotation(G, generator=gen).numpy()
        t = np.c_[rng.uniform(-0.3, 0.3, (G, 2)), rng.uniform(0.6, 1.2, G)]
        size = mean[cls] * rng.uniform(0.8, 1.2, (G, 3))
        hv = rng.random(G) > 0.2
        gt = PoseSet(cls, R, t, size, None, hv)
        keep = rng.random(G) < 0.9
        k = int(keep.sum())
        dR = axis_angle_to_rotation_matrix(rng.normal(0, np.deg2rad(3), (k, 3)))
        p_R = R[keep] @ dR
        p_t = t[keep] + rng.normal(0, 0.015, (k, 3))
        p_s = size[keep] * rng.uniform(0.85, 1.15, (k, 3))
        p_c = cls[keep]
        F = int(rng.integers(0, 3))
        p_R = np.concatenate([p_R, random_rotation(F, generator=gen).numpy()])
        p_t = np.concatenate([p_t, np.c_[rng.uniform(-0.3, 0.3, (F, 2)), rng.uniform(0.6, 1.2, F)]])
        fc = rng.integers(1, 7, F)
        p_s = np.concatenate([p_s, mean[fc]])
        p_c = np.concatenate([p_c, fc])
        pred = PoseSet(p_c, p_R, p_t, p_s, rng.uniform(0.3, 1.0, k + F))
        frames.append((pred, gt))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=2754)
    ap.add_argument("--modes", default="nocs,exact")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "eval_speed.json"))
    args = ap.parse_args()
    frames = make_frames(args.frames)
    n_gt = sum(len(g) for _, g in frames)
    n_pred = sum(len(p) for p, _ in frames)
    out = {"frames": args.frames, "gt": n_gt, "pred": n_pred, "machine": platform.processor() or platform.machine(),
           "modes": {}}
    for mode in args.modes.split(","):
        ev = NOCSEvaluator(NOCS_REAL, iou_mode=mode)
        t0 = time.perf_counter()
        for pred, gt in frames:
            ev.process(pred, gt)
        t1 = time.perf_counter()
        m = ev.evaluate()
        t2 = time.perf_counter()
        out["modes"][mode] = {"process_s": round(t1 - t0, 3), "evaluate_s": round(t2 - t1, 3),
                              "total_s": round(t2 - t0, 3),
                              "mean": {k.split("/")[-1]: round(v, 4) for k, v in m.items() if "/mean/" in k}}
        print(mode, out["modes"][mode])
    write_json_atomic(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
