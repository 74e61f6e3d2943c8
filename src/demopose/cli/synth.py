"""Generate a synthetic RGB-D dataset in the NOCS layout (CAMERA or Real style).

Procedural objects of the six NOCS categories plus distractors on a textured table, random cameras
and lights, rendered by Embree ray casting, with structured-light depth noise and colour noise (off
with --no-noise). Frame i is a function of (--seed, --split, i) only: the output is the same for any
--workers, and an interrupted run is completed by running the same command again.

Examples:
  demopose synth data/synth --frames 1000 --workers 2                 # CAMERA/train/...
  demopose synth data/synth --frames 200 --style real --split test    # Real/test/scene_k/...
"""

from __future__ import annotations

import argparse

HELP = "generate synthetic RGB-D frames with NOCS ground truth in the NOCS CAMERA/Real layout"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="dataset root to write (created; an existing run is resumed)")
    parser.add_argument("--frames", type=int, required=True, help="number of frames")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="processes (0 = one per CPU core; default 1)")
    parser.add_argument("--style", choices=("camera", "real"), default="camera", help="layout (default camera)")
    parser.add_argument("--split", default="train", help="split name: train, val, test (default train)")
    parser.add_argument("--no-noise", action="store_true", help="clean depth and colour (no sensor noise)")
    parser.add_argument("--size", type=_size, default=(640, 480), help="image WIDTHxHEIGHT (default 640x480)")
    parser.add_argument("--models-per-category", type=int, default=30,
                        help="distinct procedural models per category in this split (default 30)")
    parser.add_argument("--frames-per-scene", type=int, default=100,
                        help="real style: frames per scene_<k> folder (default 100)")
    parser.add_argument("--renderer", choices=("embree", "torch"), default="embree", help="default embree")
    parser.add_argument("--user-meshes", default=None, metavar="DIR",
                        help="your own meshes as DIR/<category>/*.obj|glb|ply (y up; canonicalised and scaled), "
                             "mixed with the procedural ones")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import os

    from demopose.synth.generate import SynthConfig, generate

    workers = args.workers if args.workers > 0 else (len(os.sched_getaffinity(0))
                                                     if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    cfg = SynthConfig(out=args.out, frames=args.frames, seed=args.seed, workers=workers, style=args.style,
                      split=args.split, noise=not args.no_noise, width=args.size[0], height=args.size[1],
                      models_per_category=args.models_per_category, frames_per_scene=args.frames_per_scene,
                      renderer=args.renderer, user_meshes=args.user_meshes)
    report = generate(cfg, progress=not args.no_progress)
    print(f"wrote {report.written} frames ({report.skipped} already complete) to {args.out} in "
          f"{report.seconds:.1f} s ({report.fps:.2f} frames/s)")
    return 0
