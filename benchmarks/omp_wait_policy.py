"""How OpenMP's waiting threads change torch CPU inference, on a quiet and on a busy machine.

Usage::

    python benchmarks/omp_wait_policy.py [--threads 2] [--busy 3] [--rounds 2]

Each setting runs the ``gpv`` network's inference (5 instances of 1028 points, eval, ``torch.no_grad``)
in a fresh process (libgomp reads its environment once, when torch loads), rounds interleaved so that
every setting sees the same machine: first on the machine as it is ("quiet"), then while ``--busy``
processes spin on the CPU ("busy": what a shared or loaded machine looks like to torch). Settings:

- ``default``: neither variable set (libgomp spins about 300,000 iterations before sleeping);
- ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once);
- ``spin-1k`` / ``spin-10k``: ``GOMP_SPINCOUNT`` 1,000 / 10,000 (a short spin, then sleep);
- ``active``: ``OMP_WAIT_POLICY=ACTIVE`` (waiting threads never sleep).

The figure is the median wall-clock ms per instance; the load average before each phase is recorded.
``demopose/_env.py`` picks its default from this file. Writes
``benchmarks/results/omp_wait_policy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "omp_wait_policy.json"

SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin-1k": {"GOMP_SPINCOUNT": "1000"},
    "spin-10k": {"GOMP_SPINCOUNT": "10000"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
}

# run in the child: the setting under test is its whole environment (nothing sets demopose's defaults here)
_CHILD = """
import json, statistics, sys, time
import torch
from demopose.models import build_model
torch.manual_seed(0)
torch.set_num_threads({threads})
model = build_model("gpv").eval()
batch = {{"points": torch.randn(5, 1028, 3) * 0.1, "class_ids": torch.arange(1, 6)}}
times = []
with torch.no_grad():
    for i in range({warmup} + {repeats}):
        t0 = time.perf_counter()
        model(batch)
        if i >= {warmup}:
            times.append((time.perf_counter() - t0) * 1000 / 5)
print(json.dumps(statistics.median(times)))
"""


def _measure(setting: str, threads: int, warmup: int, repeats: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(SETTINGS[setting], OMP_NUM_THREADS=str(threads))
    code = _CHILD.format(threads=threads, warmup=warmup, repeats=repeats)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _phase(name: str, threads: int, rounds: int, warmup: int, repeats: int) -> dict:
    load = list(os.getloadavg())
    runs: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for r in range(rounds):
        for s in SETTINGS:
            runs[s].append(round(_measure(s, threads, warmup, repeats), 2))
            print(f"[{name} round {r + 1}/{rounds}] {s}: {runs[s][-1]:.1f} ms / instance", flush=True)
    return {"load_average_before": load, "load_average_after": list(os.getloadavg()),
            "ms_per_instance": {s: statistics.median(v) for s, v in runs.items()}, "runs_ms": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--busy", type=int, default=3, help="spinning processes in the busy phase (default 3)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds per phase (default 2)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON (default {OUT})")
    args = ap.parse_args(argv)

    from demopose.benchmark.latency import machine_description
    from demopose.io import write_json_atomic

    result = {"benchmark": "gpv inference (5 x 1028 points) under OpenMP wait settings",
              "command": "python benchmarks/omp_wait_policy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(), "threads": args.threads,
              "settings": SETTINGS, "busy_processes": args.busy}
    result["quiet"] = _phase("quiet", args.threads, args.rounds, args.warmup, args.repeats)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        time.sleep(2.0)
        result["busy"] = _phase("busy", args.threads, args.rounds, args.warmup, args.repeats)
    finally:
        for p in spinners:
            p.kill()
    write_json_atomic(args.out, result)
    print(json.dumps({ph: result[ph]["ms_per_instance"] for ph in ("quiet", "busy")}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
