"""End-to-end latency of a DeMo-Pose model on RGB-D frames: per stage, frames per second, peak memory.

Each frame goes through the product path of :class:`demopose.predictor.Predictor`, one building block
per timed stage (nothing of the pipeline is re-implemented here):

=========== ====================================================================== ============================
stage       what                                                                   call
=========== ====================================================================== ============================
decode      colour PNG (``cv2.imread``) + 16-bit depth PNG from disk, checked      ``read_user_frame``,
            and converted to a :class:`~demopose.data.frame.Frame`                 ``Predictor.make_frame``
detection   letterbox + detector forward (its PAN maps kept for the fusion) + box  ``Predictor.detect``
            decoding / NMS + score threshold
masks       each detection's mask cut from the depth (support plane + depth band)  ``Predictor.masks_for``
points      point sampling of every instance, collation                            ``frame_batch``
network     the detection pass's feature maps sampled at the points, pose network  ``run_batch``
post        :class:`~demopose.geometry.pose.PoseSet` and the objects by score      ``poses_from_prediction``,
                                                                                   ``Predictor.objects``
=========== ====================================================================== ============================

(DeMo-Pose has no PnP: that is the monocular model's post-processing.) On CUDA every stage boundary
synchronises, so a stage's time is its own.

Frames: ``frames`` synthetic REAL-style 640×480 frames with ``objects`` objects each
(:mod:`demopose.synth`; some may be hidden or cut off, the JSON records the count), generated into
``data_dir`` (kept and reused) or a temporary folder.

Instances: untrained weights detect nothing meaningful, and the time of the masks / points / network /
post stages grows with the number of objects; ``instances="gt-boxes"`` therefore hands the frames'
ground-truth 2D boxes (with their classes, score 1) to the mask stage, the detector still running in full
with its output discarded. ``detector`` uses the detector's own objects (a trained checkpoint);
``auto`` is ``detector`` with a checkpoint and ``gt-boxes`` without.

Backends, each measured in its own process so that its peak resident memory (``VmHWM``) is its own:

- ``torch``: the PyTorch model, eager;
- ``torch-bf16``: the same under bfloat16 autocast (``Predictor(precision="bf16")``);
- ``torch-compile``: the same with ``torch.compile`` of the pose network (``compile_mode``);
- ``ort`` / ``ort-int8`` / ``ort-int8-dynamic``: the graphs exported by :mod:`demopose.export`, fp32 /
  int8-quantised (static, calibrated: int8 weights, uint8 activations; dynamic: int8 weights), run by
  onnxruntime (:class:`~demopose.export.OrtDeMoPose`); recorded as skipped, with the reason, when
  :mod:`demopose.export` or onnxruntime cannot be imported or the export / quantisation fails.

Times are per-frame medians over the timed frames after ``warmup`` frames; ``fps`` is ``1000 /`` the
median end-to-end time. The process's CPU time is recorded too (``cpu_*``): on a shared, loaded machine
the wall time includes waiting for a core, while with one thread the CPU time is close to the wall time
the same work takes on an idle core.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from demopose._env import thread_defaults
from demopose.benchmark.rounds import merge_runs

__all__ = ["BACKENDS", "STAGES", "format_table", "measure_backend", "merge_rounds", "prepare_frames",
           "run_end_to_end"]

STAGES = ("decode", "detection", "masks", "points", "network", "post")
"""The timed stages, in pipeline order (module docstring)."""

BACKENDS = ("torch", "torch-bf16", "torch-compile", "ort", "ort-int8", "ort-int8-dynamic")
ORT_BACKENDS = ("ort", "ort-int8", "ort-int8-dynamic")
INSTANCE_SOURCES = ("auto", "detector", "gt-boxes")


# ---------------------------------------------------------------------------------------------------------
# frames


def prepare_frames(folder: str | os.PathLike, n: int, width: int = 640, height: int = 480, objects: int = 5,
                   seed: int = 0, progress: bool = True) -> list[dict[str, Any]]:
    """Generate (or reuse) ``n`` synthetic REAL-style frames with ``objects`` objects each under ``folder``.

    Returns:
        per frame a JSON-ready dict: ``name``, ``color`` / ``depth`` (PNG paths; depth 16-bit millimetres),
        ``K`` (3×3 rows), ``depth_scale`` (0.001 m per unit), ``gt_boxes`` ``(M, 4)`` x1 y1 x2 y2 of the visible
        objects' masks (pixels), ``gt_class_ids`` ``(M,)`` 1-based.
    """
    from demopose.data.nocs import load_frame
    from demopose.synth.generate import SynthConfig, generate
    from demopose.synth.scene import SceneConfig
    from demopose.synth.writer import frame_paths

    if n < 1:
        raise ValueError(f"frames: expected at least 1, got {n}")
    if objects < 1:
        raise ValueError(f"objects: expected at least 1 object per frame, got {objects}")
    cfg = SynthConfig(out=str(folder), frames=int(n), seed=int(seed), style="real", split="bench",
                      width=int(width), height=int(height), models_per_category=3, mpl_points=64,
                      scene=SceneConfig(objects=(int(objects), int(objects))))
    generate(cfg, progress=progress)
    out = []
    for i in range(int(n)):
        p = frame_paths(folder, "real", "bench", i, cfg.frames_per_scene)
        f = load_frame(p.stem, load_nocs=False)
        masks = f.masks()
        boxes = []
        for m in masks:
            v, u = np.nonzero(m)
            boxes.append([float(u.min()), float(v.min()), float(u.max() + 1), float(v.max() + 1)])
        out.append({"name": f.frame_id or str(p.stem), "color": str(p.file("color")), "depth": str(p.file("depth")),
                    "K": np.asarray(f.K, np.float64).tolist(), "depth_scale": 0.001,
                    "gt_boxes": boxes, "gt_class_ids": [int(c) for c in f.class_ids]})
    return out


# ---------------------------------------------------------------------------------------------------------
# one backend (runs in a child process)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build_torch_model(spec: dict[str, Any]):
    import torch

    from demopose.engine.checkpoint import load_model
    from demopose.models import build_model

    if spec.get("checkpoint"):
        return load_model(spec["checkpoint"])
    torch.manual_seed(int(spec.get("seed", 0)))  # the same untrained weights in every process
    return build_model(spec["model"], **dict(spec.get("model_args") or {})).eval()


def measure_backend(spec: dict[str, Any]) -> dict[str, Any]:
    """Time the pipeline of one backend over the frames of ``spec`` (in this process).

    ``spec`` keys: ``backend``, ``device``, ``threads``, ``frames`` (from :func:`prepare_frames`), ``timed``
    (frames timed, cycling over ``frames``), ``warmup``, ``instances`` (``detector`` | ``gt-boxes``),
    ``model`` / ``model_args`` / ``checkpoint`` / ``seed`` (the PyTorch model), ``onnx`` (exported base
    path, ORT backends), ``compile_mode`` (``torch-compile``), ``score_threshold``.

    Returns:
        ``stages_ms`` (median per stage), ``stages_mean_ms``, ``end_to_end_ms`` (median), ``end_to_end_mean_ms``,
        ``fps``, ``cpu_stages_ms`` / ``cpu_end_to_end_ms`` (medians of this process's CPU time, all its threads:
        with one thread, about the wall time on an idle core of a shared machine), ``instances_per_frame`` /
        ``detections_per_frame`` (means), ``peak_rss_mb`` and on CUDA ``peak_gpu_mb``
        (``torch.cuda.max_memory_allocated``).
    """
    import cv2
    import torch

    from demopose.benchmark.latency import _peak_rss_mb
    from demopose.data.user_frames import CameraFile, UserFrame, read_user_frame
    from demopose.geometry.pose import PoseSet
    from demopose.pipeline import Instances, frame_batch, poses_from_prediction, run_batch
    from demopose.predictor import Predictor

    threads = int(spec["threads"])
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    device = torch.device(spec.get("device", "cpu"))
    backend = spec["backend"]
    if backend in ORT_BACKENDS:
        from demopose.export import load_ort_model

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" else \
            ["CPUExecutionProvider"]
        model = load_ort_model(spec["onnx"], providers=providers, threads=threads)
    else:
        model = _build_torch_model(spec)
    predictor = Predictor(model, device=device, score_threshold=float(spec.get("score_threshold", 0.3)),
                          precision="bf16" if backend == "torch-bf16" else "fp32")
    if backend == "torch-compile":
        model.pose = torch.compile(model.pose, mode=spec.get("compile_mode") or None, dynamic=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    frames = spec["frames"]
    use_gt = spec["instances"] == "gt-boxes"
    n_timed, warmup = int(spec["timed"]), int(spec.get("warmup", 2))
    times: dict[str, list[float]] = {s: [] for s in (*STAGES, "end_to_end")}
    cpu: dict[str, list[float]] = {s: [] for s in (*STAGES, "end_to_end")}
    n_inst, n_det = [], []
    wall, proc = time.perf_counter, time.process_time

    def clock() -> tuple[float, float]:
        return wall(), proc()

    with torch.inference_mode():
        for it in range(warmup + n_timed):
            fd = frames[it % len(frames)]
            uf = UserFrame(fd["name"], Path(fd["color"]), Path(fd["depth"]))
            cam = CameraFile(np.asarray(fd["K"], np.float64), float(fd["depth_scale"]))
            gt = None
            if use_gt:
                nb = len(fd["gt_class_ids"])
                gt = Instances(boxes=np.asarray(fd["gt_boxes"], np.float64).reshape(nb, 4),
                               class_ids=np.asarray(fd["gt_class_ids"], np.int64), scores=np.ones(nb),
                               keypoints=np.zeros((nb, 9, 2)), rel_size=np.zeros((nb, 3)))
            _sync(device)
            t = [clock()]
            rgb, depth, K = read_user_frame(uf, cam)
            frame = predictor.make_frame(rgb, depth, K, source=fd["name"])
            t.append(clock())  # decode
            det = predictor.detect(frame)
            _sync(device)
            t.append(clock())  # detection
            inst = predictor.masks_for(frame, gt if use_gt else det)
            t.append(clock())  # masks
            batch, kept = frame_batch(predictor.model, frame, inst, predictor.n_points, predictor.seed, det.features)
            t.append(clock())  # points
            pred = run_batch(predictor.model, batch, predictor.seed, device) if batch is not None else None
            _sync(device)
            t.append(clock())  # network
            if pred is None:
                objects = predictor.objects(PoseSet.empty(), inst)
            else:
                objects = predictor.objects(poses_from_prediction(pred, inst, kept), inst.select(kept))
            t.append(clock())  # post
            if it < warmup:
                continue
            for s, a, b in zip(STAGES, t[:-1], t[1:]):
                times[s].append((b[0] - a[0]) * 1000)
                cpu[s].append((b[1] - a[1]) * 1000)
            times["end_to_end"].append((t[-1][0] - t[0][0]) * 1000)
            cpu["end_to_end"].append((t[-1][1] - t[0][1]) * 1000)
            n_inst.append(len(objects))
            n_det.append(len(det))

    med = {s: statistics.median(times[s]) for s in STAGES}
    e2e = statistics.median(times["end_to_end"])
    out: dict[str, Any] = {
        "backend": backend, "status": "ok", "device": str(device), "threads": threads,
        "timed_frames": n_timed, "warmup_frames": warmup,
        "stages_ms": {s: round(v, 3) for s, v in med.items()},
        "stages_mean_ms": {s: round(statistics.fmean(times[s]), 3) for s in STAGES},
        "end_to_end_ms": round(e2e, 3),
        "end_to_end_mean_ms": round(statistics.fmean(times["end_to_end"]), 3),
        "fps": round(1000.0 / e2e, 3),
        "cpu_stages_ms": {s: round(statistics.median(cpu[s]), 3) for s in STAGES},
        "cpu_end_to_end_ms": round(statistics.median(cpu["end_to_end"]), 3),
        "instances_per_frame": round(statistics.fmean(n_inst), 3),
        "detections_per_frame": round(statistics.fmean(n_det), 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    if backend == "torch-compile":
        out["compile_mode"] = spec.get("compile_mode") or "default"
    if device.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def _child_main(spec_path: str) -> None:
    """Entry point of a backend's process: read the spec, measure, print one JSON line."""
    spec = json.loads(Path(spec_path).read_text())
    print(json.dumps(measure_backend(spec)))


# ---------------------------------------------------------------------------------------------------------
# the run


def _export(model, backend: str, folder: Path, data_root: Path, name: str | None) -> Path:
    """The exported (``ort``) or exported and int8-quantised (``ort-int8*``) DeMo-Pose graphs; their base path.

    int8 is the quantisation of ``demopose export --int8`` (:mod:`demopose.export.quantize`); the static one is
    calibrated here on the benchmark's own frames (``data_root``, subset ``real_bench``): the scales do not change
    the time.
    """
    from demopose.export import export_model
    from demopose.export.onnx_export import graph_paths, read_metadata
    from demopose.export.quantize import calibration_feeds, quantize_graph

    base = folder / "model.onnx"
    paths = graph_paths(base, "demopose")
    if not all(p.is_file() for p in paths.values()):
        paths = export_model(model, base, name=name)
    if backend == "ort":
        return base
    mode = "dynamic" if backend == "ort-int8-dynamic" else "static"
    q_base = folder / f"model.int8{'-dynamic' if mode == 'dynamic' else ''}.onnx"
    q_paths = graph_paths(q_base, "demopose")
    link = read_metadata(paths["pose"])["demopose"] | {"mono": q_paths["mono"].name, "pose": q_paths["pose"].name}
    for g in ("mono", "pose"):
        feeds = None if mode == "dynamic" else calibration_feeds(
            paths[g], data_root, "real_bench", frames=8, mono_path=paths["mono"] if g == "pose" else None,
            progress=False)
        quantize_graph(paths[g], q_paths[g], mode, feeds, metadata={"demopose": link})
    return q_base


def run_end_to_end(model: str = "demopose_small", checkpoint: str | os.PathLike | None = None,
                   backends: tuple[str, ...] = ("torch", "ort", "ort-int8"), frames: int = 20, threads: int = 2,
                   device: str = "cpu", out: str | os.PathLike | None = None, command: str = "", warmup: int = 2,
                   instances: str = "auto", data_dir: str | os.PathLike | None = None, width: int = 640,
                   height: int = 480, objects: int = 5, seed: int = 0, model_args: dict[str, Any] | None = None,
                   compile_mode: str | None = None, score_threshold: float = 0.3,
                   progress: bool = True, rounds: int = 1) -> dict[str, Any]:
    """Measure every backend (one process each) and write ``out`` (JSON, atomic) when given.

    Args:
        model / model_args: registered model (untrained, seeded by ``seed``) when there is no ``checkpoint``.
        backends: some of :data:`BACKENDS`; ORT ones are skipped (with the reason) when unavailable.
        frames: timed frames (all distinct). warmup: frames run before timing.
        threads: torch, OpenCV and onnxruntime intra-op threads (and ``OMP_NUM_THREADS`` of the child).
        instances: ``auto`` | ``detector`` | ``gt-boxes`` (module docstring).
        data_dir: where the frames are generated (kept, reused next time); default a temporary folder.
        command: the command line that produced the file, recorded in it.
        rounds: runs of every backend, interleaved (backend 1, 2, ..., then again), each in a fresh process, so
            that a slow minute of a shared machine does not land on one backend only. A backend's row holds the
            median over its rounds of each stage median and of the end-to-end median (:func:`merge_rounds`);
            its ``rounds`` entry lists each round's end-to-end figures.

    Returns:
        the results document (see ``benchmarks/results/end_to_end_cpu.json``).
    """
    import torch

    from demopose.benchmark.latency import machine_description

    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f"backends: unknown {unknown}; expected some of {list(BACKENDS)}")
    if instances not in INSTANCE_SOURCES:
        raise ValueError(f"instances: expected one of {INSTANCE_SOURCES}, got {instances!r}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch sees no CUDA GPU")
    if threads < 1:
        raise ValueError(f"threads: expected a positive count, got {threads}")
    if rounds < 1:
        raise ValueError(f"rounds: expected a positive count, got {rounds}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint: {checkpoint} is not a file")
    source = instances if instances != "auto" else ("detector" if checkpoint else "gt-boxes")
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="demopose_e2e_") as tmp:
        tmp_path = Path(tmp)
        folder = Path(data_dir) if data_dir else tmp_path / "frames"
        frame_list = prepare_frames(folder, frames, width, height, objects, seed, progress)
        base = {"device": device, "threads": int(threads), "frames": frame_list, "timed": int(frames),
                "warmup": int(warmup), "instances": source, "model": model, "model_args": dict(model_args or {}),
                "checkpoint": str(checkpoint) if checkpoint else None, "seed": int(seed),
                "compile_mode": compile_mode, "score_threshold": float(score_threshold)}
        torch_model = None
        specs: dict[str, dict[str, Any]] = {}  # backend -> its child's spec, or its "skipped" row
        for b in backends:
            spec = dict(base, backend=b)
            if b in ORT_BACKENDS:
                try:
                    import onnxruntime  # noqa: F401

                    import demopose.export  # noqa: F401
                except ImportError as e:
                    specs[b] = {"backend": b, "status": "skipped",
                                "reason": f"demopose.export / onnxruntime not importable ({e})"}
                    continue
                try:
                    if torch_model is None:
                        torch_model = _build_torch_model(base)
                    spec["onnx"] = str(_export(torch_model, b, tmp_path / "onnx", folder,
                                               _checkpoint_model(checkpoint) if checkpoint else model))
                except Exception as e:  # noqa: BLE001 - any failure becomes the recorded reason
                    specs[b] = {"backend": b, "status": "skipped",
                                "reason": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
                    continue
            specs[b] = spec
        from tqdm.auto import tqdm

        runs: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
        todo = [b for b in backends if "status" not in specs[b]]
        with tqdm(total=rounds * len(todo), desc="end-to-end", unit="run", disable=not progress) as bar:
            for _ in range(rounds):
                for b in todo:
                    runs[b].append(_run_child(specs[b], tmp_path, threads))
                    bar.update()
        rows = [specs[b] if "status" in specs[b] else merge_rounds(runs[b]) for b in backends]
        load_end = os.getloadavg()
    doc = {
        "benchmark": "end-to-end", "machine": machine_description(), "command": command,
        "date": time.strftime("%Y-%m-%d"), "model": model if not checkpoint else _checkpoint_model(checkpoint),
        "checkpoint": str(checkpoint) if checkpoint else None, "weights": "checkpoint" if checkpoint else "untrained",
        "device": device, "threads": int(threads), "instances": source,
        "frame_size": [int(width), int(height)], "objects_per_scene": int(objects),
        "visible_objects_per_frame": round(statistics.fmean(len(f["gt_class_ids"]) for f in frame_list), 3),
        "timed_frames": int(frames), "warmup_frames": int(warmup), "rounds": int(rounds),
        "load_average": {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in load_end]},
        "stages": list(STAGES), "results": rows,
    }
    if out is not None:
        from demopose.io import write_json_atomic

        write_json_atomic(out, doc)
    return doc


def merge_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One backend's row from its rounds (:func:`measure_backend` results): medians over the rounds of the stage
    medians and of the end-to-end and CPU medians, FPS from that end-to-end median, means of the per-round means
    and of the instance counts, the largest peak memory; ``rounds`` keeps each round's ``end_to_end_ms``, ``fps`` and
    ``cpu_end_to_end_ms``. A round that did not finish (``status`` other than ``ok``) is the row."""
    bad = next((r for r in runs if r.get("status") != "ok"), None)
    if bad is not None:
        return bad
    row = merge_runs(runs, medians=("stages_ms", "cpu_stages_ms", "end_to_end_ms", "cpu_end_to_end_ms"),
                     means=("stages_mean_ms", "end_to_end_mean_ms", "instances_per_frame", "detections_per_frame"),
                     maxima=("peak_rss_mb", "peak_gpu_mb"), kept=("end_to_end_ms", "fps", "cpu_end_to_end_ms"),
                     digits=3)
    if len(runs) > 1:
        row["fps"] = round(1000.0 / statistics.median(r["end_to_end_ms"] for r in runs), 3)
    return row


def _checkpoint_model(path: str | os.PathLike) -> str | None:
    from demopose.engine.checkpoint import load_checkpoint

    cfg = (load_checkpoint(path).get("config") or {}).get("model") or {}
    return cfg.get("name")


def _run_child(spec: dict[str, Any], tmp: Path, threads: int) -> dict[str, Any]:
    spec_path = tmp / f"spec_{spec['backend']}.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-c", "import sys; from demopose.benchmark.end_to_end import _child_main; "
                                 "_child_main(sys.argv[1])", str(spec_path)]
    env = {**os.environ, **thread_defaults(), "OMP_NUM_THREADS": str(threads)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        if spec["backend"] != "torch":  # optional backends: a failure is a recorded result, not a crash
            return {"backend": spec["backend"], "status": "skipped",
                    "reason": "failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:300]}
        raise RuntimeError(f"end-to-end benchmark of backend {spec['backend']} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------
# report


def format_table(doc: dict[str, Any], clock: str = "wall") -> str:
    """A markdown table of an end-to-end document, one row per backend: per-stage medians (ms), end-to-end
    median and FPS of the wall ``clock`` (and each round's FPS when the document has several rounds), or with
    ``clock="cpu"`` the process CPU times (and frames per CPU second)."""
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock: expected 'wall' or 'cpu', got {clock!r}")
    cpu = clock == "cpu"
    rounds = not cpu and any("rounds" in r for r in doc["results"])
    wall_cols = " | end-to-end ms | FPS" + (" | FPS of each round" if rounds else "") + " | CPU ms / frame"
    head = ("| backend | " + " | ".join(STAGES) + (" | CPU ms / frame | frames / CPU s" if cpu else wall_cols)
            + " | inst./frame | peak RSS (MB) |")
    cells = len(STAGES) + (5 if cpu else 6 + rounds)
    lines = [head, "|" + "---|" * cells]
    for r in doc["results"]:
        if r.get("status") != "ok":
            lines.append(f"| {r['backend']} | skipped: {r.get('reason', '')} |" + " |" * (cells - 2))
            continue
        st = " | ".join(f"{r['cpu_stages_ms' if cpu else 'stages_ms'][s]:.1f}" for s in STAGES)
        mem = f"{r['peak_rss_mb']:.0f}" + (f" (GPU {r['peak_gpu_mb']:.0f})" if "peak_gpu_mb" in r else "")
        each = (" | " + ", ".join(f"{x['fps']:.2f}" for x in r.get("rounds", [r]))) if rounds else ""
        mid = (f"{r['cpu_end_to_end_ms']:.1f} | {1000 / r['cpu_end_to_end_ms']:.2f}" if cpu else
               f"{r['end_to_end_ms']:.1f} | {r['fps']:.2f}{each} | {r['cpu_end_to_end_ms']:.1f}")
        lines.append(f"| {r['backend']} | {st} | {mid} | {r['instances_per_frame']:.1f} | {mem} |")
    return "\n".join(lines)
