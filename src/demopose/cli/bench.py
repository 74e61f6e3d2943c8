"""Measure the inference latency and peak memory of pose networks; write a JSON results file.

Example (the command behind ``benchmarks/results/latency_cpu.json``)::

    demopose bench --models gpv,gpv_small,hs_pose,hs_pose_small --threads 2 \\
        --out benchmarks/results/latency_cpu.json

Each model runs in its own process; CUDA is measured too when a GPU is present (``--devices``).
"""

from __future__ import annotations

import argparse

HELP = "measure network latency (per instance / per frame) and peak memory; write a results file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="gpv,gpv_small,hs_pose,hs_pose_small",
                        help="comma-separated registered model names")
    parser.add_argument("--devices", default="auto", help="comma-separated: cpu,cuda (auto: cpu, plus cuda if present)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--points", type=int, default=1028, help="points per instance")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/latency.json", help="results file (JSON)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from demopose.benchmark.latency import format_rows, run_benchmark
    from demopose.models import list_models

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise ValueError(f"--models: unknown {unknown}; registered: {list_models()}")
    devices = (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])) if args.devices == "auto" \
        else [d.strip() for d in args.devices.split(",")]
    command = (f"demopose bench --models {','.join(models)} --devices {','.join(devices)} --threads {args.threads} "
               f"--points {args.points} --repeats {args.repeats} --out {args.out}")
    doc = run_benchmark(models, devices, args.threads, Path(args.out), command=command, n_points=args.points,
                        repeats=args.repeats)
    print(format_rows(doc))
    print(f"machine: {doc['machine']}")
    print(f"wrote {args.out}")
    return 0
