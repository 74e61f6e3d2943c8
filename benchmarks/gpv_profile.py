"""Where the gpv network's CPU inference time goes: matrix products, the compiled kernels, everything else.

Usage::

    python benchmarks/gpv_profile.py [--threads 2] [--batch 5] [--repeats 10]

Runs the ``gpv`` forward (eval, ``torch.no_grad``, ``--batch`` random instances of 1028 points) ``--repeats``
times under ``torch.profiler`` and sums, per forward and instance: the self CPU time of the matrix-product
operators (``aten::addmm``, ``addmm_``, ``mm``, ``bmm``, ``mkldnn::_linear_pointwise``), the wall time spent in
the compiled kernels (:mod:`demopose.native`: ctypes calls the profiler does not see, timed by wrapping them, their
input checks included),
and the rest of the measured wall time. The profiler adds overhead: read the split, not the total, against the
other benchmark files. Writes ``benchmarks/results/gpv_profile.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import demopose  # noqa: F401  (before torch: its OpenMP / BLAS thread defaults)

# isort: split
import torch

OUT = Path(__file__).parent / "results" / "gpv_profile.json"
MATMUL_OPS = ("aten::addmm", "aten::addmm_", "aten::mm", "aten::bmm", "mkldnn::_linear_pointwise")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=5, help="instances per forward (default 5)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON (default {OUT})")
    args = ap.parse_args(argv)

    from demopose.benchmark.micro import write_result
    from demopose.models import build_model
    from demopose.native import gcn3d as native_gcn3d
    from demopose.native import knn as native_knn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("gpv").eval()
    batch = {"points": torch.randn(args.batch, 1028, 3) * 0.1, "class_ids": torch.arange(args.batch) % 6 + 1}
    kernel_s = {"gcn3d": 0.0, "knn": 0.0}

    def timed(module, name: str, key: str) -> None:
        fn = getattr(module, name)

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                kernel_s[key] += time.perf_counter() - t0

        setattr(module, name, wrapper)

    timed(native_gcn3d, "aggregate", "gcn3d")
    timed(native_knn, "knn", "knn")
    load = os.getloadavg()
    with torch.no_grad():
        for _ in range(3):
            model(batch)
        kernel_s.update(gcn3d=0.0, knn=0.0)
        with torch.profiler.profile() as prof:
            t0 = time.perf_counter()
            for _ in range(args.repeats):
                model(batch)
            wall = time.perf_counter() - t0
    matmul_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATMUL_OPS)
    per = 1000.0 / (args.repeats * args.batch)  # seconds over all forwards -> ms per instance
    row = {"threads": args.threads, "instances_per_forward": args.batch,
           "wall_ms_per_instance": round(wall * per, 2),
           "matmul_ms_per_instance": round(matmul_us / 1e6 * per, 2),
           "kernels_ms_per_instance": {k: round(v * per, 2) for k, v in kernel_s.items()},
           "other_ms_per_instance": round((wall - matmul_us / 1e6 - sum(kernel_s.values())) * per, 2),
           "native_kernels": native_gcn3d.available() and native_knn.available()}
    print(json.dumps(row))
    write_result(args.out, "gpv forward per instance under torch.profiler: matrix products, compiled kernels, rest",
                 "benchmarks/gpv_profile.py", argv, load, [row])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
