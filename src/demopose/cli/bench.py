"""Measure the inference latency and peak memory of pose networks, or of the whole DeMo-Pose pipeline
(``--end-to-end``); write a JSON results file.

Network latency (the command behind ``benchmarks/results/latency_cpu.json``)::

    demopose bench --models gpv,gpv_small,hs_pose,hs_pose_small --threads 2 \\
        --out benchmarks/results/latency_cpu.json

Each model runs in its own process; CUDA is measured too when a GPU is present (``--devices``).

End to end (``demopose.benchmark.end_to_end``): PNG decoding, detection, depth masks, point sampling,
network and post-processing timed per stage on synthetic 640×480 frames with five objects, per backend
(torch, torch-compile, onnxruntime fp32 / int8), each in its own process::

    demopose bench --end-to-end --checkpoint src/demopose/assets/demopose_synth_small.pt \\
        --backends torch,ort,ort-int8 --frames 30 --threads 2 --out benchmarks/results/end_to_end_cpu.json
"""

from __future__ import annotations

import argparse

HELP = ("measure network latency (per instance / per frame), or with --end-to-end the per-stage latency and FPS "
        "of the whole pipeline, and peak memory; write a results file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="gpv,gpv_small,hs_pose,hs_pose_small",
                        help="comma-separated registered model names")
    parser.add_argument("--devices", default="auto", help="comma-separated: cpu,cuda (auto: cpu, plus cuda if present)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--points", type=int, default=1028, help="points per instance")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of every model (or end-to-end backend), interleaved, each in a fresh process; a "
                             "row keeps the median over rounds (default 1; 3 or more on a shared machine)")
    parser.add_argument("--out", default=None, help="results file (JSON; default benchmarks/results/latency.json, "
                        "or benchmarks/results/end_to_end.json with --end-to-end)")
    e2e = parser.add_argument_group("end to end (--end-to-end)")
    e2e.add_argument("--end-to-end", action="store_true",
                     help="time the whole pipeline per stage (decode, detection, masks, points, network, post)")
    e2e.add_argument("--checkpoint", default=None, help="DeMo-Pose checkpoint (default: untrained --model weights)")
    e2e.add_argument("--model", default="demopose_small", choices=("demopose", "demopose_small"),
                     help="model built (untrained, seeded) when no --checkpoint is given")
    e2e.add_argument("--backends", default="torch,ort,ort-int8",
                     help="comma-separated: torch, torch-compile, ort, ort-int8, ort-int8-dynamic (ORT ones need "
                          "demopose.export and onnxruntime; recorded as skipped otherwise)")
    e2e.add_argument("--frames", type=int, default=20, help="timed frames (distinct synthetic frames)")
    e2e.add_argument("--warmup", type=int, default=2, help="frames run before timing")
    e2e.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="device of the pipeline")
    e2e.add_argument("--instances", default="auto", choices=("auto", "detector", "gt-boxes"),
                     help="objects handed to the mask stage: the detector's, or the frames' ground-truth boxes "
                          "(auto: detector with --checkpoint, gt-boxes for untrained weights)")
    e2e.add_argument("--compile-mode", default=None,
                     help="torch.compile mode of the torch-compile backend (e.g. reduce-overhead: CUDA graphs)")
    e2e.add_argument("--data-dir", default=None,
                     help="where the synthetic frames are generated and kept (default: a temporary folder)")


def run(args: argparse.Namespace) -> int:
    if args.end_to_end:
        return _run_end_to_end(args)
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
    args.out = args.out or "benchmarks/results/latency.json"
    command = (f"demopose bench --models {','.join(models)} --devices {','.join(devices)} --threads {args.threads} "
               f"--points {args.points} --repeats {args.repeats}" + (f" --rounds {args.rounds}" if args.rounds != 1
                                                                      else "") + f" --out {args.out}")
    doc = run_benchmark(models, devices, args.threads, Path(args.out), command=command, n_points=args.points,
                        repeats=args.repeats, rounds=args.rounds)
    print(format_rows(doc))
    print(f"machine: {doc['machine']}")
    print(f"wrote {args.out}")
    return 0


def _run_end_to_end(args: argparse.Namespace) -> int:
    from demopose.benchmark.end_to_end import format_table, run_end_to_end

    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    out = args.out or "benchmarks/results/end_to_end.json"
    command = "demopose bench --end-to-end" + (f" --checkpoint {args.checkpoint}" if args.checkpoint else
                                               f" --model {args.model}")
    command += (f" --backends {','.join(backends)} --frames {args.frames} --warmup {args.warmup} "
                f"--threads {args.threads} --device {args.device} --instances {args.instances}")
    if args.rounds != 1:
        command += f" --rounds {args.rounds}"
    if args.compile_mode:
        command += f" --compile-mode {args.compile_mode}"
    if args.data_dir:
        command += f" --data-dir {args.data_dir}"
    command += f" --out {out}"
    doc = run_end_to_end(model=args.model, checkpoint=args.checkpoint, backends=backends, frames=args.frames,
                         threads=args.threads, device=args.device, out=out, command=command, warmup=args.warmup,
                         instances=args.instances, data_dir=args.data_dir, compile_mode=args.compile_mode,
                         rounds=args.rounds)
    print(format_table(doc))
    print(f"machine: {doc['machine']}; load average {doc['load_average']}")
    print(f"wrote {out}")
    return 0
