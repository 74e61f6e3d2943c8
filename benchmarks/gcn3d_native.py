"""The compiled 3D-GC kernel against the torch path: gpv backbone time per instance, at 1 and 2 threads.

Usage::

    python benchmarks/gcn3d_native.py [--threads 1,2] [--rounds 4]

Times the ``gpv`` backbone (``GPVBackbone.levels``: the five 3D-GC layers, the two poolings and their neighbour
searches; eval, ``torch.no_grad``) on random instances of 1028 points, batches of 1 and 5, with the compiled
neighbour aggregation (:mod:`demopose.native.gcn3d`) and with the torch path (cache-sized blocks of
``(points, k, S·C)`` intermediates), alternately (``--rounds`` interleaved rounds; each round's figure is the
fastest of 8 runs; the file keeps the median over rounds, in ms per instance). Both compute the same outputs;
the largest difference is recorded. Writes ``benchmarks/results/gcn3d_native.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import demopose  # noqa: F401  (before torch: its OpenMP / BLAS thread defaults)

# isort: split
import torch

OUT = Path(__file__).parent / "results" / "gcn3d_native.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="torch thread counts, comma separated (default 1,2)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON (default {OUT})")
    args = ap.parse_args(argv)

    from demopose.benchmark.latency import machine_description
    from demopose.io import write_json_atomic
    from demopose.models import build_model
    from demopose.native import gcn3d as native_gcn3d

    if not native_gcn3d.available():
        raise SystemExit("the compiled 3D-GC kernel is unavailable on this machine (see the warning above)")
    usable = native_gcn3d.usable
    paths = {"native": usable, "torch": lambda *tensors: False}
    torch.manual_seed(0)
    model = build_model("gpv").eval()
    batches = {b: torch.randn(b, 1028, 3) * 0.1 for b in (1, 5)}
    load = list(os.getloadavg())

    def levels(points: torch.Tensor) -> list[torch.Tensor]:
        out = model.backbone.levels(points, generator=torch.Generator().manual_seed(1))
        return [out.fm_0, out.fm_1, out.fm_2, out.fm_3, out.fm_4]

    results, max_diff = [], 0.0
    with torch.no_grad():
        for name, fn in paths.items():  # same outputs
            native_gcn3d.usable = fn
            out = levels(batches[5])
            if name == "native":
                ref = out
            else:
                max_diff = max(float((a - b).abs().max()) for a, b in zip(ref, out))
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            runs = {p: {b: [] for b in batches} for p in paths}
            for _ in range(args.rounds):
                for name, fn in paths.items():
                    native_gcn3d.usable = fn
                    for b, points in batches.items():
                        for _ in range(2):
                            levels(points)
                        times = []
                        for _ in range(8):
                            t0 = time.perf_counter()
                            levels(points)
                            times.append(time.perf_counter() - t0)
                        runs[name][b].append(min(times) * 1000 / b)
            for name in paths:
                row = {"threads": threads, "path": name,
                       "ms_per_instance": {str(b): round(statistics.median(v), 2) for b, v in runs[name].items()}}
                results.append(row)
                print(json.dumps(row), flush=True)
    native_gcn3d.usable = usable
    given = argv if argv is not None else sys.argv[1:]
    doc = {"benchmark": "gpv backbone (GPVBackbone.levels) per instance: compiled 3D-GC kernel vs torch path",
           "command": "python benchmarks/gcn3d_native.py " + " ".join(given),
           "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(), "points": 1028,
           "max_abs_diff": max_diff, "load_average_before": load, "load_average_after": list(os.getloadavg()),
           "results": results}
    write_json_atomic(args.out, doc)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
