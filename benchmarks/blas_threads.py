"""numpy's BLAS threads against torch's: the DeMo-Pose network stage with numpy's OpenBLAS at 1 and at N threads.

Usage::

    python benchmarks/blas_threads.py [--checkpoint src/demopose/assets/demopose_synth_small.pt] [--threads 2]

The product pipeline (``demopose.Predictor``: detection, depth masks, point sampling) runs numpy between the
networks; OpenBLAS, numpy's BLAS, keeps its worker threads spinning for a while after each call, on the cores
torch's threads need next. Each setting runs in a fresh process (OpenBLAS reads ``OPENBLAS_NUM_THREADS`` when
numpy loads) on synthetic 640×480 REAL-style frames (``demopose.synth``, generated once into ``--data-dir``),
and times the network stage alone (``run_batch``: the pose network on the frame's instances, the detector's
feature maps reused), median over ``--frames`` frames after 2 warm-up frames. torch runs ``--threads`` threads
in every setting. ``demopose/_env.py`` picks its default from this file. Writes
``benchmarks/results/blas_threads.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "blas_threads.json"
ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, statistics, time
import demopose
demopose.set_thread_defaults()  # GOMP_SPINCOUNT; OPENBLAS_NUM_THREADS is the parent's setting
import torch
from demopose.data.nocs import NOCSDataset
from demopose.pipeline import frame_batch, run_batch
from demopose.predictor import Predictor
torch.set_num_threads({threads})
p = Predictor.from_checkpoint({checkpoint!r})
frames = NOCSDataset({data!r}, "real_bench", load_nocs=False)
times = []
with torch.inference_mode():
    for i in range({frames} + 2):
        f = frames[i % len(frames)]
        det = p.detect(f)
        batch, kept = frame_batch(p.model, f, p.masks_for(f, det), p.n_points, p.seed, det.features)
        if batch is None:
            continue
        t0 = time.perf_counter()
        run_batch(p.model, batch, p.seed, "cpu")
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1000)
print(json.dumps(statistics.median(times)))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "src/demopose/assets/demopose_synth_small.pt"))
    ap.add_argument("--threads", type=int, default=2, help="torch threads, and OpenBLAS threads of the second "
                                                           "setting (default 2)")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    ap.add_argument("--data-dir", type=Path, default=Path.home() / ".cache" / "demopose" / "bench_frames",
                    help="synthetic frames, generated on first use")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON (default {OUT})")
    args = ap.parse_args(argv)

    from demopose.benchmark.end_to_end import prepare_frames
    from demopose.benchmark.latency import machine_description
    from demopose.io import write_json_atomic

    prepare_frames(args.data_dir, args.frames)
    settings = {"openblas-1": "1", f"openblas-{args.threads}": str(args.threads)}
    runs: dict[str, list[float]] = {s: [] for s in settings}
    load = list(os.getloadavg())
    for r in range(args.rounds):
        for name, n in settings.items():
            env = {**os.environ, "OPENBLAS_NUM_THREADS": n, "OMP_NUM_THREADS": str(args.threads)}
            code = _CHILD.format(threads=args.threads, checkpoint=args.checkpoint, data=str(args.data_dir),
                                 frames=args.frames)
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            runs[name].append(round(float(out.stdout.strip().splitlines()[-1]), 2))
            print(f"[round {r + 1}/{args.rounds}] {name}: network stage {runs[name][-1]:.1f} ms / frame", flush=True)
    result = {"benchmark": "DeMo-Pose network stage (run_batch) per frame, numpy OpenBLAS threads 1 vs N",
              "command": "python benchmarks/blas_threads.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(), "checkpoint": args.checkpoint,
              "torch_threads": args.threads, "frames": args.frames, "load_average_before": load,
              "load_average_after": list(os.getloadavg()),
              "network_ms_per_frame": {s: sorted(v)[len(v) // 2] for s, v in runs.items()}, "runs_ms": runs}
    write_json_atomic(args.out, result)
    print(json.dumps(result["network_ms_per_frame"]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
