"""Frames per second of the synthetic generator (``demopose synth``) at 640×480.

Two measurements:

* end to end: ``generate()`` of ``--frames`` frames with ``--workers`` processes into a temporary
  folder, exactly what ``demopose synth OUT --frames N --workers W`` does (model building, Poisson-disk
  MPL sampling and file writing included);
* per stage, in this process, in steady state (one model per category, all built and written during
  5 warm-up frames): scene composition, rendering (Embree, with shadows), sensor noise, and writing,
  in wall-clock and in CPU seconds per frame (CPU time is less disturbed by other processes).

Writes ``benchmarks/results/synth_fps.json``. Run: ``python benchmarks/synth_fps.py --frames 60 --workers 2``
(``--preset v1`` times generator version 1's settings with today's code).
The machine's load average is recorded, because other processes sharing the CPUs slow it down.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from demopose.io import write_json_atomic
from demopose.synth.generate import GENERATOR_VERSION, SynthConfig, _write, generate, intrinsics_for, make_pool
from demopose.synth.noise import add_color_noise, add_depth_noise
from demopose.synth.render import get_renderer
from demopose.synth.scene import compose_scene


def stage_times(cfg: SynthConfig, n: int, clock=time.perf_counter, warmup: int = 5) -> dict[str, float]:
    """Median seconds per frame of each stage over ``n`` frames (after ``warmup`` frames)."""
    pool = make_pool(cfg)
    renderer = get_renderer(cfg.renderer)
    K = intrinsics_for(cfg.style, cfg.width, cfg.height)
    from demopose.synth.generate import SynthFrame, frame_seed

    times: dict[str, list[float]] = {"compose": [], "render": [], "noise": [], "write": []}
    for i in range(n + warmup):
        s_scene, s_noise, s_extra = frame_seed(cfg.seed, cfg.split, i).spawn(3)
        t0 = clock()
        scene = compose_scene(np.random.default_rng(s_scene), pool, K, cfg.scene, cfg.randomization,
                              np.random.default_rng(s_extra))
        t1 = clock()
        r = renderer.render(scene, K)
        t2 = clock()
        rng = np.random.default_rng(s_noise)
        depth = add_depth_noise(r.depth, r.normals, r.albedo, rng, focal=K.fx, cfg=cfg.depth, specular=r.specular)
        color = add_color_noise(r.color, rng, cfg.color)
        t3 = clock()
        _write(cfg, SynthFrame(i, scene, r, color, depth, K))
        t4 = clock()
        if i >= warmup:
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
    ap.add_argument("--preset", default="v2", help="generator settings preset (v1: version 1's frames)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synth_fps.json"))
    args = ap.parse_args()

    load_before = os.getloadavg()
    ru0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as d:
        cfg = SynthConfig(out=d, frames=args.frames, seed=0, workers=args.workers, style=args.style,
                          preset=args.preset)
        rep = generate(cfg, progress=False)
    ru1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in zip(ru0, ru1))
    load_mid = os.getloadavg()
    stages, stages_cpu = {}, {}
    for clock, out in ((time.perf_counter, stages), (time.process_time, stages_cpu)):
        with tempfile.TemporaryDirectory() as d:
            out.update(stage_times(SynthConfig(out=d, frames=args.stage_frames, seed=1, style=args.style,
                                               models_per_category=1, preset=args.preset), args.stage_frames, clock))
    result = {
        "command": f"python benchmarks/synth_fps.py --frames {args.frames} --workers {args.workers} "
                   f"--style {args.style} --preset {args.preset}",
        "equivalent_cli": f"demopose synth OUT --frames {args.frames} --workers {args.workers} --style {args.style} "
                          f"--preset {args.preset}",
        "generator_version": GENERATOR_VERSION,
        "preset": args.preset,
        "image_size": [640, 480],
        "frames": args.frames,
        "workers": args.workers,
        "seconds": rep.seconds,
        "frames_per_second": rep.fps,
        "cpu_seconds_per_frame": cpu / args.frames,
        "idle_machine_estimate_frames_per_second": min(args.workers, os.cpu_count() or 1) * args.frames / cpu,
        "steady_state_single_process_seconds_per_frame": stages,
        "steady_state_single_process_cpu_seconds_per_frame": stages_cpu,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_before": load_before, "loadavg_after_generate": load_mid,
                    "loadavg_after": os.getloadavg()},
    }
    write_json_atomic(args.out, result)
    print(f"{rep.fps:.2f} frames/s end to end ({args.frames} frames, {args.workers} workers, 640x480), "
          f"{cpu / args.frames:.3f} CPU s/frame, load average {load_before[0]:.1f} -> {load_mid[0]:.1f}; "
          f"steady-state CPU s/frame: " + ", ".join(f"{k} {v:.3f}" for k, v in stages_cpu.items()))


if __name__ == "__main__":
    main()
