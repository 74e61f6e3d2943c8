"""``torch.compile`` (inductor, CPU) of a training step, against eager, in one process (issue #15, item 3).

Usage::

    python benchmarks/train_compile.py [--model gpv_small] [--precision bf16] [--batch 16] [--repeats 6]

The model's forward + loss is compiled (``torch.compile(mode=None)``; the compiled 3D-GC and kNN kernels are opaque
ctypes calls, so the graph breaks around them and inductor compiles the pieces between), then eager and compiled
steps (forward, loss, backward; random points, the model's own loss on synthetic targets) alternate ``--repeats``
times. Writes ``benchmarks/results/train_compile.json``: the compile time (first compiled step), the median step
times and their ratio, the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results" / "train_compile.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gpv_small")
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--points", type=int, default=1028)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from demopose import set_thread_defaults

    set_thread_defaults()  # before torch

    import torch

    from demopose.benchmark.latency import machine_description
    from demopose.engine.precision import autocast
    from demopose.engine.trainer import float32_outputs
    from demopose.io import write_json_atomic
    from demopose.models import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.model).train()
    B, N = args.batch, args.points
    R = torch.linalg.qr(torch.randn(B, 3, 3))[0]
    R = R * torch.linalg.det(R).sign().view(B, 1, 1)
    batch = {"points": torch.randn(B, N, 3) * 0.05 + torch.tensor([0.0, 0.0, 0.8]),
             "class_ids": torch.arange(B).remainder(6) + 1, "R": R,
             "t": torch.tensor([[0.0, 0.0, 0.8]]).repeat(B, 1), "size": torch.full((B, 3), 0.1),
             "mean_size": torch.full((B, 3), 0.1), "y_symmetric": torch.arange(B).remainder(2) == 0,
             "handle_visible": torch.ones(B, dtype=torch.bool)}
    batch["size_residual"] = batch["size"] - batch["mean_size"]

    def forward_loss(b):
        with autocast(args.precision):
            pred = model(b)
        return sum(model.loss(float32_outputs(pred), b).values())

    compiled = torch.compile(forward_loss)

    def step(fn):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        fn(batch).backward()
        return time.perf_counter() - t0

    load = os.getloadavg()
    step(forward_loss)
    t0 = time.perf_counter()
    error = None
    try:
        step(compiled)
        compile_s = time.perf_counter() - t0
    except Exception as exc:  # a compile failure is a result too
        compile_s, error = time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"[:2000]
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.repeats):
        times["eager"].append(step(forward_loss))
        if error is None:
            times["compiled"].append(step(compiled))
    row = {k: statistics.median(v) * 1000 for k, v in times.items() if v}
    doc = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
           "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(), "model": args.model,
           "precision": args.precision, "batch": B, "points": N, "threads": args.threads,
           "compile_s": round(compile_s, 1), "error": error, "step_ms": row,
           "runs_ms": {k: [round(t * 1000, 1) for t in v] for k, v in times.items()},
           "speedup": row["eager"] / row["compiled"] if "compiled" in row else None,
           "load_average_before": list(load), "load_average_after": list(os.getloadavg())}
    write_json_atomic(args.out, doc)
    print(f"compile {compile_s:.0f} s; eager {row['eager']:.0f} ms/step" +
          (f", compiled {row['compiled']:.0f} ms/step ({doc['speedup']:.2f}x)" if "compiled" in row else
           f"; compile failed: {error}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
