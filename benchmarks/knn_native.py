"""The compiled exact kNN kernel against the two torch forms, at the gpv backbone's sizes.

Usage::

    python benchmarks/knn_native.py [--threads 1,2] [--rounds 4]

Times :func:`demopose.layers.knn.knn_indices` (k = 10, self excluded) on random point sets of 1028 and 257 points
(the gpv backbone's first two levels), batches of 1 and 5: the compiled kernel (:mod:`demopose.native.knn`), the
torch matrix-multiply form with ``torch.topk`` (``exact_distances(False)``) and the torch exact difference form
with a stable sort (``exact_distances(True)``), alternately (``--rounds`` interleaved rounds; each round's figure
is the fastest of 10 runs; the file keeps the median over rounds, in ms per call). Whether the kernel's
neighbours equal the torch exact form's is recorded. Writes ``benchmarks/results/knn_native.json``.
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

OUT = Path(__file__).parent / "results" / "knn_native.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="torch thread counts, comma separated (default 1,2)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON (default {OUT})")
    args = ap.parse_args(argv)

    from demopose.benchmark.latency import machine_description
    from demopose.io import write_json_atomic
    from demopose.layers.knn import exact_distances, knn_indices
    from demopose.native import knn as native_knn

    if not native_knn.available():
        raise SystemExit("the compiled kNN kernel is unavailable on this machine (see the warning above)")
    usable = native_knn.usable

    def torch_form(exact: bool):
        def run(points: torch.Tensor) -> torch.Tensor:
            native_knn.usable = lambda *a: False
            try:
                with exact_distances(exact):
                    return knn_indices(points, k=10, exclude_self=True)
            finally:
                native_knn.usable = usable
        return run

    forms = {"native": lambda p: knn_indices(p, k=10, exclude_self=True),
             "torch matmul + topk": torch_form(False), "torch exact + stable sort": torch_form(True)}
    torch.manual_seed(0)
    cases = {(b, n): torch.randn(b, n, 3) * 0.1 for b in (1, 5) for n in (1028, 257)}
    equal = all(torch.equal(forms["native"](p), forms["torch exact + stable sort"](p)) for p in cases.values())
    load = list(os.getloadavg())
    results = []
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        runs = {(f, c): [] for f in forms for c in cases}
        for _ in range(args.rounds):
            for f, fn in forms.items():
                for c, points in cases.items():
                    for _ in range(2):
                        fn(points)
                    times = []
                    for _ in range(10):
                        t0 = time.perf_counter()
                        fn(points)
                        times.append(time.perf_counter() - t0)
                    runs[(f, c)].append(min(times) * 1000)
        for (f, (b, n)), v in runs.items():
            row = {"threads": threads, "form": f, "batch": b, "points": n, "ms": round(statistics.median(v), 3)}
            results.append(row)
            print(json.dumps(row), flush=True)
    given = argv if argv is not None else sys.argv[1:]
    doc = {"benchmark": "kNN (k = 10, self excluded): compiled exact kernel vs torch forms",
           "command": "python benchmarks/knn_native.py " + " ".join(given),
           "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(),
           "native_equals_torch_exact": equal, "load_average_before": load,
           "load_average_after": list(os.getloadavg()), "results": results}
    write_json_atomic(args.out, doc)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
