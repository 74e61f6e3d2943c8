"""Network latency and peak memory of registered pose models.

Each model is measured in a fresh subprocess so that its peak resident memory (``VmHWM``) is its own.
Pose models (:class:`~demopose.models.base.PoseModel`) get random instances of ``n_points`` points, plus what they
ask for: an RGB crop (``rgb_size``) or one letterboxed frame per batch and the points' pixels in it
(``image_size``); detectors (:class:`~demopose.models.base.Detector`, ``mono``) get one random image per frame.
Timings are medians over ``repeats`` runs after ``warmup`` runs; CUDA timings synchronise before
reading the clock. Per-instance latency uses a batch of one instance; per-frame latency a batch of
``instances_per_frame`` instances (a REAL275 frame has about five objects).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from demopose._cpuinfo import cpuinfo_field
from demopose._env import thread_defaults
from demopose.benchmark.rounds import merge_runs
from demopose.models.base import Detector

__all__ = ["format_rows", "machine_description", "measure_model", "merge_latency_rounds", "run_benchmark"]


def machine_description() -> dict[str, Any]:
    """CPU model, core count, torch version, GPU name if any, and which compiled CPU kernels
    (:mod:`demopose.native`) this process runs: a figure measured without them is not comparable."""
    cpu = cpuinfo_field("model name") or platform.processor() or platform.machine()
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}
    flags = set((cpuinfo_field("flags") or "").split())
    # the instruction sets the speed figures depend on (bf16 products: AMX tiles, AVX512-BF16; fp32: AVX-512, AVX2)
    info["cpu_flags"] = [f for f in ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx512f",
                                     "avx2", "fma") if f in flags]
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    from demopose.native import gcn3d, gcn3d_grad, knn, pointnet2

    info["native_kernels"] = [name for name, mod in (("gcn3d", gcn3d), ("gcn3d_grad", gcn3d_grad), ("knn", knn),
                                                     ("pointnet2", pointnet2)) if mod.available()]
    return info


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_wall_cpu(fn, device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """Median wall-clock and median process CPU time (all threads) of ``fn()``, in ms. The CPU time is
    the less load-sensitive figure on a shared machine."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times) * 1000, statistics.median(cpu) * 1000


def measure_model(name: str, device: str = "cpu", threads: int = 2, n_points: int = 1028,
                  instances_per_frame: int = 5, warmup: int = 3, repeats: int = 10) -> dict[str, Any]:
    """Latency (ms) and peak memory (MB) of one registered model's inference graph."""
    from demopose.models import build_model

    torch.set_num_threads(threads)
    dev = torch.device(device)
    model = build_model(name).to(dev).eval()
    params = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(0)

    detector = isinstance(model, Detector)
    input_size = model.image_size if detector else None  # a detector reads images only
    rgb_size = None if detector else model.rgb_size  # pose models with an RGB crop (cleanpose)
    frame_size = None if detector else model.image_size  # pose models reading the whole frame (demopose)
    n_classes = len(model.categories)

    def batch(b: int) -> dict[str, torch.Tensor]:
        if input_size is not None:
            w, h = input_size
            return {"image": torch.rand(b, 3, int(h), int(w), generator=g).to(dev)}
        pts = torch.randn(b, n_points, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 0.8])
        out = {"points": pts.to(dev), "class_ids": torch.arange(b).remainder(n_classes).add(1).to(dev)}
        if rgb_size:
            out["rgb"] = torch.rand(b, 3, rgb_size, rgb_size, generator=g).to(dev)
            out["rgb_pixels"] = (torch.rand(b, n_points, 2, generator=g) * (rgb_size - 1)).to(dev)
        if frame_size:  # the instances of one frame share its letterboxed image
            w, h = frame_size
            out["image"] = torch.rand(1, 3, int(h), int(w), generator=g).to(dev)
            out["image_index"] = torch.zeros(b, dtype=torch.int64, device=dev)
            out["image_pixels"] = (torch.rand(b, n_points, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])).to(dev)
        return out

    out: dict[str, Any] = {"model": name, "device": device, "threads": threads, "parameters": params}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        if input_size is not None:  # a detector: one image per frame, whatever the number of objects
            b1 = batch(1)
            out["input_size"] = list(input_size)
            out["ms_per_frame"], out["cpu_ms_per_frame"] = _time_wall_cpu(lambda: model(b1), dev, warmup, repeats)
            out["ms_per_instance"] = None
        else:
            b1, bf = batch(1), batch(instances_per_frame)
            out["n_points"] = n_points
            out["ms_per_instance"], out["cpu_ms_per_instance"] = _time_wall_cpu(lambda: model(b1), dev, warmup, repeats)
            out["ms_per_frame"], out["cpu_ms_per_frame"] = _time_wall_cpu(lambda: model(bf), dev, warmup, repeats)
            out["instances_per_frame"] = instances_per_frame
    out["peak_rss_mb"] = _peak_rss_mb()
    if dev.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_benchmark(models: list[str], devices: list[str], threads: int, out: Path, command: str = "",
                  rounds: int = 1, **kw: Any) -> dict[str, Any]:
    """Measure every model on every device (one subprocess each) and write ``out`` (JSON); ``command`` is
    recorded so that the file says how to reproduce it. With ``rounds > 1`` every (device, model) runs that many
    times, interleaved (all models, then all again), each in a fresh process; its row holds the medians over the
    rounds (:func:`merge_latency_rounds`)."""
    if rounds < 1:
        raise ValueError(f"rounds: expected a positive count, got {rounds}")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {(dev, name): [] for dev in devices for name in models}
    for _ in range(rounds):
        for dev, name in runs:
            cmd = [sys.executable, "-c",
                   "import json,sys; from demopose.benchmark.latency import measure_model; "
                   f"print(json.dumps(measure_model({name!r}, {dev!r}, {threads}, **{kw!r})))"]
            env = {**os.environ, **thread_defaults(), "OMP_NUM_THREADS": str(threads)}
            load = list(os.getloadavg())  # the machine may be shared: record its load with each row
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                raise RuntimeError(f"benchmark of {name} on {dev} failed:\n{r.stderr[-2000:]}")
            runs[(dev, name)].append({**json.loads(r.stdout.strip().splitlines()[-1]), "load_average": load})
    rows = [merge_latency_rounds(v) for v in runs.values()]
    doc = {"benchmark": "network latency", "machine": machine_description(),
           "command": command, "rounds": rounds,
           "date": time.strftime("%Y-%m-%d"), "results": rows}
    from demopose.io import write_json_atomic

    write_json_atomic(out, doc)
    return doc


def merge_latency_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's row from its rounds (:func:`measure_model` results): the median of each timing over the
    rounds, the largest peak memory, and ``rounds``: each round's ``ms_per_instance``, ``ms_per_frame`` and load
    average. One round is returned as it is."""
    row = merge_runs(runs, medians=("ms_per_instance", "cpu_ms_per_instance", "ms_per_frame", "cpu_ms_per_frame"),
                     maxima=("peak_rss_mb", "peak_gpu_mb"), kept=("ms_per_instance", "ms_per_frame", "load_average"))
    if len(runs) > 1:
        row["load_average"] = [r["load_average"] for r in runs]
    return row


def format_rows(doc: dict[str, Any]) -> str:
    """A markdown table of a benchmark document."""
    lines = ["| model | device | threads | params (M) | ms / instance | ms / frame | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["results"]:
        inst = "—" if r["ms_per_instance"] is None else f"{r['ms_per_instance']:.1f}"
        frame = f"{r['ms_per_frame']:.1f}" + (f" ({r['input_size'][0]}×{r['input_size'][1]} image)"
                                               if "input_size" in r else f" ({r['instances_per_frame']} inst.)")
        lines.append(f"| {r['model']} | {r['device']} | {r['threads']} | {r['parameters'] / 1e6:.2f} | "
                     f"{inst} | {frame} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)
