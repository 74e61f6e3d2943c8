"""Frames per second of the synthetic generator (``demopose synth``) at 640×480.

Two measurements:

* end to end: ``generate()`` of ``--frames`` frames with ``--workers`` processes into a temporary
  folder, exactly what ``demopose synth OUT --frames N --workers W`` does (model building, Poisson-disk
  MPL sampling and file writing included);
* per stage, in this process after a warm-up: scene composition, rendering (Embree, with shadows),
  sensor noise, and writing, in seconds per frame.

Writes ``benchmarks/results/synth_fps.json``. Run: ``python benchmarks/synth_fps.py --frames 60 --workers 2``.
The machine's load average is recorded, because other processes sharing the CPUs slow it down.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from demopose.io import write_json_atomic
from demopose.synth.generate import SynthConfig, _write, generate, intrinsics_for, make_pool
from demopose.synth.noise import add_color_noise, add_depth_noise
from demopose.synth.render import get_renderer
from demopose.synth.scene import compose_scene


def stage_times(cfg: SynthConfig, n: int) -> dict[str, float]:
    """Median seconds per frame of each stage over ``n`` frames (after 3 warm-up frames)."""
    pool = make_pool(cfg)
    renderer = get_renderer(cfg.renderer)
    K = intrinsics_for(cfg.style, cfg.width, cfg.height)
    from demopose.synth.generate import SynthFrame, frame_seed

    times: dict[str, list[float]] = {"compose": [], "render": [], "noise": [], "write": []}
    for i in range(n + 3):
        s_scene, s_noise = frame_seed(cfg.seed, cfg.split, i).spawn(2)
        t0 = time.perf_counter()
        scene = compose_scene(np.random.default_rng(s_scene), pool, K, cfg.scene)
        t1 = time.perf_counter()
        r = renderer.render(scene, K)
        t2 = time.perf_counter()
        rng = np.random.default_rng(s_noise)
        depth = add_depth_noise(r.depth, r.normals, r.albedo, rng, focal=K.fx)
        color = add_color_noise(r.color, rng)
        t3 = time.perf_counter()
        _write(cfg, SynthFrame(i, scene, r, color, depth, K))
        t4 = time.perf_counter()
        if i >= 3:
            for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[k].append(v)
    out = {k: float(np.median(v)) for k, v in times.items()}
    out["total"] = float(sum(out.values()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--style", default="camera")
    ap.add_argument("--stage-frames", type=int, default=10)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synth_fps.json"))
    args = ap.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        cfg = SynthConfig(out=d, frames=args.frames, seed=0, workers=args.workers, style=args.style)
        rep = generate(cfg, progress=False)
    with tempfile.TemporaryDirectory() as d:
        stages = stage_times(SynthConfig(out=d, frames=args.stage_frames, seed=1, style=args.style),
                             args.stage_frames)
    result = {
        "command": f"python benchmarks/synth_fps.py --frames {args.frames} --workers {args.workers} "
                   f"--style {args.style}",
        "equivalent_cli": f"demopose synth OUT --frames {args.frames} --workers {args.workers} --style {args.style}",
        "image_size": [640, 480],
        "frames": args.frames,
        "workers": args.workers,
        "seconds": rep.seconds,
        "frames_per_second": rep.fps,
        "single_process_seconds_per_frame": stages,
        "single_process_frames_per_second": 1.0 / stages["total"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
    }
    write_json_atomic(args.out, result)
    print(f"{rep.fps:.2f} frames/s end to end ({args.frames} frames, {args.workers} workers, 640x480); "
          f"single process stages (s/frame): " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))


if __name__ == "__main__":
    main()
