"""Ablation studies: train and test several variants on the same data with equal budgets, then tabulate.

A study is a list of :class:`Variant` (a packaged config plus dotted overrides) and the tables it fills.
Every variant trains with ``demopose train`` and is scored with ``demopose test`` in a subprocess of its
own (the command lines are recorded, so any row can be rerun by hand), into ``<out>/<variant>/``. A
variant whose ``test/metrics.json`` exists is not run again, and an interrupted training resumes from its
``last.pt``: rerunning the same command completes a study.

The ``demopose`` study reproduces the shape of DeMo-Pose's tables (seeds/000): Table 1 (GPV-Pose
depth-only vs the monocular branch vs DeMo-Pose, with FPS), Table 2 (DeMo-Pose with and without the
Mesh-Point Loss) and Table 3 (the fusion strategies). The ``cleanpose`` study is CleanPose's ladder
(AG-Pose, + front door, + KD, both; and AG-Pose with this project's former BatchNorm MLPs) and DeMo-Pose with
and without those two modules. A variant's
overrides may use ``{half_steps}`` (half its step budget).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from demopose.io import write_json_atomic, write_text_atomic

__all__ = ["STUDIES", "Variant", "collect_rows", "format_markdown", "run_study"]

log = logging.getLogger(__name__)

METRIC_KEYS = ("iou25", "iou50", "iou75", "5deg2cm", "5deg5cm", "10deg2cm", "10deg5cm", "10deg10cm")
METRIC_NAMES = ("IoU25", "IoU50", "IoU75", "5°2cm", "5°5cm", "10°2cm", "10°5cm", "10°10cm")


@dataclass(frozen=True)
class Variant:
    """One row of a study.

    Attributes:
        name: run folder and row key.
        label: the row's text in the tables.
        config: packaged config name or file.
        overrides: dotted overrides on top of it (the study's budget is added by :func:`run_study`).
        tables: the tables (ids) the row appears in.
        budget: ``"pose"`` (the study's ``steps``) or ``"detector"`` (``detector_steps``).
        needs_detector: the variant reads the detector trained by the ``mono`` variant
            (``model.args.mono_checkpoint``).
    """

    name: str
    label: str
    config: str
    overrides: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    budget: str = "pose"
    needs_detector: bool = False


@dataclass(frozen=True)
class Study:
    variants: tuple[Variant, ...]
    tables: dict[str, str] = field(default_factory=dict)  # table id -> title


_DM = "demopose_synth_small"
_CP = "cleanpose_synth_small"
_CYCLE = "train.scheduler.cycle_steps={half_steps}"
_NO_FD, _NO_KD = "model.args.causal.enabled=false", "model.args.distill.enabled=false"  # one form for every family
STUDIES: dict[str, Study] = {
    "demopose": Study(
        variants=(
            Variant("mono", "Monocular branch (mono_small, RGB + depth scale)", "mono_synth_small", (),
                    ("table1",), budget="detector"),
            Variant("gpv", "GPV-Pose, depth only (gpv_small)", "gpv_synth_small", (), ("table1", "table2")),
            Variant("demopose", "DeMo-Pose: concat + MPL", _DM, (), ("table1", "table2", "table3"),
                    needs_detector=True),
            Variant("demopose_no_mpl", "DeMo-Pose: concat, no MPL", _DM, ("model.args.mesh_points=0",),
                    ("table2",), needs_detector=True),
            Variant("gpv_mpl", "GPV-Pose + MPL (no RGB)", _DM, ("model.args.fusion=null",), ("table2",),
                    needs_detector=True),
            Variant("fusion_add", "fusion: add", _DM, ("model.args.fusion=add",), ("table3",), needs_detector=True),
            Variant("fusion_hadamard", "fusion: Hadamard", _DM, ("model.args.fusion=hadamard",), ("table3",),
                    needs_detector=True),
            Variant("fusion_mlp", "fusion: MLP + skip", _DM, ("model.args.fusion=mlp",), ("table3",),
                    needs_detector=True),
            Variant("fusion_attention", "fusion: attention + skip", _DM, ("model.args.fusion=attention",),
                    ("table3",), needs_detector=True),
        ),
        tables={"table1": "Table 1 — depth only vs monocular vs fused",
                "table2": "Table 2 — the Mesh-Point Loss",
                "table3": "Table 3 — fusion strategies (all with MPL)"},
    ),
    # CleanPose's ladder (notes/cleanpose.md §4.5): AG-Pose -> + front door -> + KD -> both, and the two
    # modules on DeMo-Pose's fused features. Triangular CyclicLR compressed to one cycle of the budget.
    "cleanpose": Study(
        variants=(
            Variant("agpose", "AG-Pose (base: cleanpose_small, both modules off)", _CP,
                    (_NO_FD, _NO_KD, _CYCLE), ("table1",)),
            Variant("agpose_bn", "AG-Pose, BatchNorm + ReLU in every MLP (mlp_layout=batchnorm)", _CP,
                    (_NO_FD, _NO_KD, "model.args.mlp_layout=batchnorm", _CYCLE), ("table1",)),
            Variant("causal", "+ front door (causal)", _CP, (_NO_KD, _CYCLE), ("table1",)),
            Variant("kd", "+ residual KD (pretrained teacher)", _CP, (_NO_FD, _CYCLE), ("table1",)),
            Variant("cleanpose", "+ both (CleanPose)", _CP, (_CYCLE,), ("table1",)),
            Variant("demopose", "DeMo-Pose (demopose_small)", _DM, ("train.scheduler.warmup_steps=20",),
                    ("table2",)),
            Variant("demopose_cleanpose", "DeMo-Pose + front door + KD", _DM,
                    ("train.scheduler.warmup_steps=20", "model.args.causal.enabled=true",
                     "model.args.distill.enabled=true"), ("table2",)),
        ),
        tables={"table1": "CleanPose ablation — AG-Pose base, + causal, + KD, both",
                "table2": "DeMo-Pose with CleanPose's modules on its fused features"},
    ),
}
"""Registered studies (name -> :class:`Study`)."""


def _run(cmd: list[str], log_file: Path, env: dict[str, str]) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log.info("$ %s", " ".join(cmd))
    with open(log_file, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if rc != 0:
        raise RuntimeError(f"command failed with exit code {rc} (log: {log_file}): {' '.join(cmd)}")


def _claim(run_dir: Path) -> Path | None:
    """Create ``run_dir/.ablation.lock`` holding our pid; None when a live process holds it (so several
    ``demopose ablate`` processes, e.g. with different ``--only`` sets, never train one variant twice)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / ".ablation.lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
                os.kill(pid, 0)
                return None  # alive
            except (ValueError, ProcessLookupError, PermissionError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return lock
    return None


def run_study(study: str, data: str | os.PathLike, out: str | os.PathLike, steps: int, detector_steps: int,
              only: Sequence[str] | None = None, detector_checkpoint: str | None = None,
              extra: Sequence[str] = (), test_frames: int = 0, threads: int | None = None) -> dict:
    """Train and test every variant of ``study`` (skipping finished ones), then write the tables.

    Args:
        data: dataset root with the configs' train and test subsets.
        out: study folder: ``<out>/<variant>/`` runs, ``<out>/results.json``, ``<out>/results.md``.
        steps: training steps of every pose variant (the equal budget).
        detector_steps: training steps of the ``mono`` variant.
        only: run just these variants (the tables still list every finished one).
        detector_checkpoint: use this trained detector instead of training the ``mono`` variant
            (its row is then scored from that checkpoint, and the budget is recorded as given).
        extra: dotted overrides applied to every variant (e.g. ``train.batch_size=16``).
        test_frames: test on at most this many frames (0: the whole test subset).
        threads: ``OMP_NUM_THREADS`` for the subprocesses (None: inherited).

    Returns:
        the results document written to ``<out>/results.json``.
    """
    if study not in STUDIES:
        raise KeyError(f"unknown study {study!r}; known: {sorted(STUDIES)}")
    st = STUDIES[study]
    out = Path(out)
    names = {v.name for v in st.variants}
    for n in only or ():
        if n not in names:
            raise KeyError(f"--only: unknown variant {n!r} of study {study!r}; known: {sorted(names)}")
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(int(threads))
    py = [sys.executable, "-m", "demopose"]
    detector = Path(detector_checkpoint) if detector_checkpoint else out / "mono" / "model_final.pt"
    commands: dict[str, list[str]] = {}
    for v in st.variants:
        run_dir = out / v.name
        n_steps = detector_steps if v.budget == "detector" else steps
        ov = [*extra, f"train.max_steps={n_steps}",
              *(o.replace("{half_steps}", str(n_steps // 2)) for o in v.overrides)]
        if v.needs_detector:
            ov.append(f"model.args.mono_checkpoint={detector}")
        ckpt = run_dir / "model_final.pt"
        if v.budget == "detector" and detector_checkpoint:
            ckpt = Path(detector_checkpoint)
        train_cmd = [*py, "train", v.config, "--data", str(data), "--out", str(run_dir), "--no-progress", *ov]
        test_cmd = [*py, "test", v.config, str(ckpt), str(data), "--out", str(run_dir / "test"), "--no-progress",
                    "--no-plots", "eval.iou=both", *ov]
        if test_frames:
            test_cmd += ["--max-frames", str(int(test_frames))]
        commands[v.name] = train_cmd if not (v.budget == "detector" and detector_checkpoint) else []
        commands[v.name + ":test"] = test_cmd
        if only and v.name not in only:
            continue
        if (run_dir / "test" / "metrics.json").is_file():
            log.info("%s: finished already", v.name)
            continue
        lock = _claim(run_dir)
        if lock is None:
            log.info("%s: being run by another process (%s); skipped", v.name, run_dir / ".ablation.lock")
            continue
        try:
            t0 = time.time()
            if commands[v.name] and not ckpt.is_file():
                _run(train_cmd, run_dir / "ablation.log", env)
            if v.needs_detector and not detector.is_file():
                raise FileNotFoundError(f"{detector}: the detector of variant {v.name!r} is missing; run the "
                                        f"'mono' variant first or pass --detector-checkpoint")
            _run(test_cmd, run_dir / "ablation.log", env)
        finally:
            lock.unlink(missing_ok=True)
        write_json_atomic(run_dir / "ablation_run.json", {"variant": v.name, "seconds": time.time() - t0,
                                                          "train_command": commands[v.name],
                                                          "test_command": test_cmd})
    doc = collect_rows(st, out, steps, detector_steps, detector_checkpoint, commands, threads)
    write_json_atomic(out / "results.json", doc)
    write_text_atomic(out / "results.md", format_markdown(st, doc))
    return doc


def _read_metrics(path: Path) -> dict | None:
    if not path.is_file():
        return None
    with open(path) as f:
        return json.load(f)


def collect_rows(st: Study, out: Path, steps: int, detector_steps: int, detector_checkpoint: str | None,
                 commands: dict[str, list[str]], threads: int | None) -> dict:
    """The results document: every finished variant's mean metrics (both IoU modes, AP %) and FPS."""
    rows = {}
    for v in st.variants:
        m = _read_metrics(out / v.name / "test" / "metrics.json")
        if m is None:
            continue
        row = {"label": v.label, "config": v.config, "overrides": list(v.overrides), "tables": list(v.tables),
               "steps": (detector_steps if v.budget == "detector" else steps)}
        if v.budget == "detector" and detector_checkpoint:
            row["steps"] = None
            row["checkpoint"] = str(detector_checkpoint)
        for mode in m.get("iou_modes", []):
            row[mode] = {k: _pct(m["metrics"].get(f"{mode}/mean/{k}")) for k in METRIC_KEYS}
        timing = m.get("timing", {})
        row["fps"] = timing.get("fps")
        row["timing"] = timing
        row["train_command"] = commands.get(v.name)
        row["test_command"] = commands.get(v.name + ":test")
        rows[v.name] = row
    return {"schema": "demopose.ablation/1", "tables": st.tables, "rows": rows, "threads": threads,
            "machine": _machine()}


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100.0 * float(x), 1)


def _machine() -> str:
    from demopose.benchmark.latency import machine_description

    m = machine_description()
    return f"{m['cpu'] or 'unknown CPU'}, {m['cores']} logical cores" + (f", {m['gpu']}" if m.get("gpu") else "")


def format_markdown(st: Study, doc: dict) -> str:
    """The study's tables in markdown (legacy NOCS IoU as published, then the exact-IoU variant)."""
    lines = [f"Machine: {doc['machine']}; AP in %, mean over categories; FPS = test frames / inference wall "
             f"time (ground-truth masks for the point models; the detector finds its own objects)."]
    for tid, title in st.tables.items():
        rows = [(n, r) for n, r in doc["rows"].items() if tid in r["tables"]]
        if not rows:
            continue
        for mode in ("nocs", "exact"):
            lines += ["", f"### {title} — IoU mode `{mode}`", "",
                      "| variant | steps | " + " | ".join(METRIC_NAMES) + " | FPS |",
                      "|---|---:|" + "---:|" * (len(METRIC_NAMES) + 1)]
            for _, r in rows:
                vals = r.get(mode) or {}
                cells = ["-" if vals.get(k) is None else f"{vals[k]:.1f}" for k in METRIC_KEYS]
                fps = "-" if r.get("fps") is None else f"{r['fps']:.1f}"
                steps = "given" if r.get("steps") is None else str(r["steps"])
                lines.append(f"| {r['label']} | {steps} | " + " | ".join(cells) + f" | {fps} |")
    return "\n".join(lines) + "\n"
