"""Ablation studies: train and test several variants on the same data with equal budgets and several seeds,
then tabulate mean ± standard deviation.

A study is a list of :class:`Variant` (a packaged config plus dotted overrides) and the tables it fills.
Every variant is trained **from scratch** (``train.init_from=null``; a frozen pretrained detector is the only
trained part a fused row starts with) once per seed (``train.seed=k``): :data:`CLAIM_SEEDS` seeds for the rows
the papers' claims rest on (``Variant.claim``), :data:`OTHER_SEEDS` for the others, or ``seeds`` for all. Each
seed trains with ``demopose train`` and is scored with ``demopose test`` in a subprocess of its own (the command
lines are recorded, so any run can be repeated by hand), into ``<out>/<variant>/seed<k>/``. A seed whose
``test/metrics.json`` exists is not run again, and an interrupted training resumes from its ``last.pt``:
rerunning the same command completes a study row by row and seed by seed (several processes may share a
study folder: a seed in progress elsewhere is skipped).

``results.json`` (schema ``demopose.ablation/2``) keeps each row's ``steps`` and its per-seed metrics under
``seeds`` (a list), with their ``mean`` and ``std``; ``results.md`` shows ``mean ± std`` and marks with ``≈``
every difference to the table's reference row that is smaller than the seed spread
(:func:`within_spread`).

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
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from demopose.io import write_json_atomic, write_text_atomic

__all__ = ["CLAIM_SEEDS", "OTHER_SEEDS", "STUDIES", "Study", "Variant", "collect_rows", "format_markdown", "run_study",
           "seed_count", "within_spread"]

log = logging.getLogger(__name__)

METRIC_KEYS = ("iou25", "iou50", "iou75", "5deg2cm", "5deg5cm", "10deg2cm", "10deg5cm", "10deg10cm")
METRIC_NAMES = ("IoU25", "IoU50", "IoU75", "5°2cm", "5°5cm", "10°2cm", "10°5cm", "10°10cm")
CLAIM_SEEDS = 3
"""Seeds of a row a paper's claim rests on (``Variant.claim``), unless ``run_study(seeds=...)``."""
OTHER_SEEDS = 2
"""Seeds of every other row."""


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
        needs_detector: the variant reads the detector trained by the ``mono`` variant (its seed 0) or the
            given one (``model.args.mono_checkpoint``), frozen.
        claim: a row the papers' claims rest on: :data:`CLAIM_SEEDS` seeds by default (else
            :data:`OTHER_SEEDS`).
    """

    name: str
    label: str
    config: str
    overrides: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    budget: str = "pose"
    needs_detector: bool = False
    claim: bool = False


@dataclass(frozen=True)
class Study:
    """The variants of a study, its tables (id -> title) and each table's reference row (id -> variant name,
    the row the others are compared with; default: the table's first row)."""

    variants: tuple[Variant, ...]
    tables: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)


_DM = "demopose_synth_small"
_CP = "cleanpose_synth_small"
_CYCLE = "train.scheduler.cycle_steps={half_steps}"
_NO_FD, _NO_KD = "model.args.causal.enabled=false", "model.args.distill.enabled=false"  # one form for every family
STUDIES: dict[str, Study] = {
    "demopose": Study(
        variants=(
            Variant("mono", "Monocular branch (mono_small, RGB + depth scale)", "mono_synth_small", (),
                    ("table1",), budget="detector"),
            Variant("gpv", "GPV-Pose, depth only (gpv_small)", "gpv_synth_small", (), ("table1", "table2"),
                    claim=True),
            Variant("demopose", "DeMo-Pose: concat + MPL", _DM, (), ("table1", "table2", "table3"),
                    needs_detector=True, claim=True),
            Variant("demopose_no_mpl", "DeMo-Pose: concat, no MPL", _DM, ("model.args.mesh_points=0",),
                    ("table2",), needs_detector=True, claim=True),
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
        references={"table1": "gpv", "table2": "demopose", "table3": "demopose"},
    ),
    # CleanPose's ladder (notes/cleanpose.md §4.5): AG-Pose -> + front door -> + KD -> both, and the two
    # modules on DeMo-Pose's fused features. Triangular CyclicLR compressed to one cycle of the budget.
    "cleanpose": Study(
        variants=(
            Variant("agpose", "AG-Pose (base: cleanpose_small, both modules off)", _CP,
                    (_NO_FD, _NO_KD, _CYCLE), ("table1",), claim=True),
            Variant("agpose_bn", "AG-Pose, BatchNorm + ReLU in every MLP (mlp_layout=batchnorm)", _CP,
                    (_NO_FD, _NO_KD, "model.args.mlp_layout=batchnorm", _CYCLE), ("table1",)),
            Variant("causal", "+ front door (causal)", _CP, (_NO_KD, _CYCLE), ("table1",)),
            Variant("kd", "+ residual KD (pretrained teacher)", _CP, (_NO_FD, _CYCLE), ("table1",)),
            Variant("cleanpose", "+ both (CleanPose)", _CP, (_CYCLE,), ("table1",), claim=True),
            # (the detector: demopose_synth_small's own, the shipped mono_synth_small, frozen)
            Variant("demopose", "DeMo-Pose (demopose_small)", _DM, ("train.scheduler.warmup_steps=20",),
                    ("table2",)),
            Variant("demopose_cleanpose", "DeMo-Pose + front door + KD", _DM,
                    ("train.scheduler.warmup_steps=20", "model.args.causal.enabled=true",
                     "model.args.distill.enabled=true"), ("table2",)),
        ),
        tables={"table1": "CleanPose ablation — AG-Pose base, + causal, + KD, both",
                "table2": "DeMo-Pose with CleanPose's modules on its fused features"},
        references={"table1": "agpose", "table2": "demopose"},
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


def seed_count(variant: Variant, seeds: int | None = None) -> int:
    """Seeds of ``variant``: ``seeds`` when given, else :data:`CLAIM_SEEDS` / :data:`OTHER_SEEDS`."""
    if seeds is not None:
        if int(seeds) < 1:
            raise ValueError(f"seeds: expected at least 1, got {seeds}")
        return int(seeds)
    return CLAIM_SEEDS if variant.claim else OTHER_SEEDS


def _seed_dir(out: Path, variant: str, k: int) -> Path:
    return out / variant / f"seed{k}"


def run_study(study: str, data: str | os.PathLike, out: str | os.PathLike, steps: int, detector_steps: int,
              only: Sequence[str] | None = None, detector_checkpoint: str | None = None,
              extra: Sequence[str] = (), test_frames: int = 0, threads: int | None = None,
              seeds: int | None = None, init_from: str | None = None) -> dict:
    """Train and test every variant of ``study`` with each of its seeds (skipping finished seeds), then write
    the tables.

    Args:
        data: dataset root with the configs' train and test subsets.
        out: study folder: ``<out>/<variant>/seed<k>/`` runs, ``<out>/results.json``, ``<out>/results.md``.
        steps: training steps of every pose variant (the equal budget).
        detector_steps: training steps of the ``mono`` variant.
        only: run just these variants (the tables still list every finished one).
        detector_checkpoint: use this trained detector instead of training the ``mono`` variant
            (its row is then that checkpoint scored once, and the budget is recorded as given).
        extra: dotted overrides applied to every variant (e.g. ``train.batch_size=16``); not ``train.init_from``
            (the study trains from scratch) nor ``train.seed`` (set per seed).
        test_frames: test on at most this many frames (0: the whole test subset).
        threads: ``OMP_NUM_THREADS`` for the subprocesses (None: inherited).
        seeds: seeds of every variant (None: :func:`seed_count`'s defaults, 3 for the claims' rows, 2 others).
            Seed ``k`` trains with ``train.seed=k``, so rows with the same ``k`` share their data order.
        init_from: a warm-started study: every pose variant starts from these weights (``train.init_from``; new
            layers as :mod:`demopose.engine.warm_start` leaves them) instead of from scratch. The papers' tables
            are from scratch; this answers another question (what each change does to a trained network) and is
            recorded in ``results.json`` (``init_from``) and the tables' header.

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
    for o in extra:
        key = o.split("=", 1)[0].strip().lstrip("-")
        if key in ("train.init_from", "train.seed"):
            raise ValueError(f"override {o!r}: the study sets {key} itself (every row from scratch, "
                             f"train.seed=k for seed k); warm-started or single-seed runs are `demopose train` runs")
    previous = _read_metrics(out / "results.json")
    if previous is not None and previous.get("init_from") != (str(init_from) if init_from else None):
        raise ValueError(f"{out / 'results.json'}: this study folder was run with init_from="
                         f"{previous.get('init_from')!r}, not {init_from!r}: rows started from different weights "
                         f"would share one table; use another --out")
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(int(threads))
    py = [sys.executable, "-m", "demopose"]
    detector = Path(detector_checkpoint) if detector_checkpoint else _seed_dir(out, "mono", 0) / "model_final.pt"
    commands: dict[str, list[list[str]]] = {}
    for v in st.variants:
        n_steps = detector_steps if v.budget == "detector" else steps
        given = v.budget == "detector" and detector_checkpoint
        commands[v.name] = []
        for k in range(1 if given else seed_count(v, seeds)):  # a given detector is one checkpoint: one row
            run_dir = _seed_dir(out, v.name, k)
            start = init_from if (init_from and v.budget == "pose") else "null"
            ov = [*extra, f"train.max_steps={n_steps}", f"train.seed={k}", f"train.init_from={start}",
                  *(o.replace("{half_steps}", str(n_steps // 2)) for o in v.overrides)]
            if v.needs_detector:
                ov.append(f"model.args.mono_checkpoint={detector}")
            ckpt = Path(detector_checkpoint) if given else run_dir / "model_final.pt"
            train_cmd = [] if given else [*py, "train", v.config, "--data", str(data), "--out", str(run_dir),
                                          "--no-progress", *ov]
            test_cmd = [*py, "test", v.config, str(ckpt), str(data), "--out", str(run_dir / "test"),
                        "--no-progress", "--no-plots", "eval.iou=both", *ov]
            if test_frames:
                test_cmd += ["--max-frames", str(int(test_frames))]
            commands[v.name].append([train_cmd, test_cmd])
            if only and v.name not in only:
                continue
            if (run_dir / "test" / "metrics.json").is_file():
                log.info("%s seed %d: finished already", v.name, k)
                continue
            lock = _claim(run_dir)
            if lock is None:
                log.info("%s seed %d: being run by another process (%s); skipped", v.name, k,
                         run_dir / ".ablation.lock")
                continue
            try:
                t0 = time.time()
                if train_cmd and not ckpt.is_file():
                    _run(train_cmd, run_dir / "ablation.log", env)
                if v.needs_detector and not detector.is_file():
                    raise FileNotFoundError(f"{detector}: the detector of variant {v.name!r} is missing; run the "
                                            f"'mono' variant first or pass --detector-checkpoint")
                _run(test_cmd, run_dir / "ablation.log", env)
            finally:
                lock.unlink(missing_ok=True)
            write_json_atomic(run_dir / "ablation_run.json", {"variant": v.name, "seed": k,
                                                              "seconds": time.time() - t0,
                                                              "train_command": train_cmd, "test_command": test_cmd})
    doc = collect_rows(st, out, steps, detector_steps, detector_checkpoint, commands, threads)
    doc["init_from"] = str(init_from) if init_from else None
    write_json_atomic(out / "results.json", doc)
    write_text_atomic(out / "results.md", format_markdown(st, doc))
    return doc


def _read_metrics(path: Path) -> dict | None:
    if not path.is_file():
        return None
    with open(path) as f:
        return json.load(f)


def _finished_seeds(out: Path, variant: str) -> list[int]:
    """Seed indices of ``variant`` with test metrics, sorted (whatever ``seeds`` the runs were started with)."""
    d = out / variant
    if not d.is_dir():
        return []
    found = [int(m.group(1)) for p in d.iterdir() if (m := re.fullmatch(r"seed(\d+)", p.name))]
    return sorted(k for k in found if (_seed_dir(out, variant, k) / "test" / "metrics.json").is_file())


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (``n - 1``; None with one value) of the non-None values."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return None, None
    mean = sum(v) / len(v)
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else None
    return round(mean, 2), (None if std is None else round(std, 2))


def collect_rows(st: Study, out: Path, steps: int, detector_steps: int, detector_checkpoint: str | None,
                 commands: dict[str, list[list[list[str]]]], threads: int | None) -> dict:
    """The results document: every variant with at least one finished seed: ``steps``, ``seeds`` (per seed:
    ``seed``, the mean metrics of both IoU modes in AP %, ``fps``, ``timing``, the commands), and over the seeds
    ``mean`` / ``std`` per IoU mode and metric and ``fps``."""
    rows = {}
    for v in st.variants:
        per_seed = []
        for k in _finished_seeds(out, v.name):
            m = _read_metrics(_seed_dir(out, v.name, k) / "test" / "metrics.json")
            entry: dict = {"seed": k}
            for mode in m.get("iou_modes", []):
                entry[mode] = {key: _pct(m["metrics"].get(f"{mode}/mean/{key}")) for key in METRIC_KEYS}
            timing = m.get("timing", {})
            entry["fps"], entry["timing"] = timing.get("fps"), timing
            cmds = commands.get(v.name, [])
            if k < len(cmds):
                entry["train_command"], entry["test_command"] = cmds[k]
            per_seed.append(entry)
        if not per_seed:
            continue
        row = {"label": v.label, "config": v.config, "overrides": list(v.overrides), "tables": list(v.tables),
               "claim": v.claim, "steps": (detector_steps if v.budget == "detector" else steps),
               "seeds": per_seed, "n_seeds": len(per_seed), "mean": {}, "std": {}}
        if v.budget == "detector" and detector_checkpoint:
            row["steps"] = None
            row["checkpoint"] = str(detector_checkpoint)
        for mode in ("nocs", "exact"):
            if not any(mode in e for e in per_seed):
                continue
            stats = {key: _mean_std([e.get(mode, {}).get(key) for e in per_seed]) for key in METRIC_KEYS}
            row["mean"][mode] = {key: ms[0] for key, ms in stats.items()}
            row["std"][mode] = {key: ms[1] for key, ms in stats.items()}
        row["fps"] = _mean_std([e.get("fps") for e in per_seed])[0]
        rows[v.name] = row
    return {"schema": "demopose.ablation/2", "tables": st.tables, "references": _references(st), "rows": rows,
            "threads": threads, "machine": _machine()}


def _references(st: Study) -> dict[str, str]:
    refs = {}
    for tid in st.tables:
        names = [v.name for v in st.variants if tid in v.tables]
        refs[tid] = st.references.get(tid, names[0] if names else "")
    return refs


def within_spread(mean_a: float, std_a: float | None, mean_b: float, std_b: float | None) -> bool | None:
    """Whether two rows' means differ by less than the seed spread: ``|a − b| < sqrt(s_a² + s_b²)``, the
    standard deviation of the difference of two single-seed runs. None when either row has fewer than two
    seeds (no spread measured)."""
    if std_a is None or std_b is None:
        return None
    return abs(mean_a - mean_b) < math.hypot(std_a, std_b)


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100.0 * float(x), 1)


def _machine() -> str:
    from demopose.benchmark.latency import machine_description

    m = machine_description()
    return f"{m['cpu'] or 'unknown CPU'}, {m['cores']} logical cores" + (f", {m['gpu']}" if m.get("gpu") else "")


def _start_text(doc: dict) -> str:
    start = doc.get("init_from")
    return f"every pose row warm-started from `{start}`" if start else "every row trained from scratch"


def format_markdown(st: Study, doc: dict) -> str:
    """The study's tables in markdown: ``mean ± std`` over the seeds (legacy NOCS IoU as published, then the
    exact-IoU variant); ``≈`` marks a difference to the table's reference row smaller than the seed spread
    (:func:`within_spread`)."""
    lines = [f"Machine: {doc['machine']}; AP in %, mean over categories, then mean ± standard deviation over the "
             f"seeds (n: seeds; {_start_text(doc)}, train.seed = 0 .. n-1); FPS = test frames / "
             f"inference wall time (ground-truth masks for the point models; the detector finds its own objects). "
             f"≈: the difference to the table's reference row (first, in bold) is smaller than the seed spread, "
             f"|Δ| < √(s_row² + s_ref²)."]
    refs = doc.get("references") or _references(st)
    for tid, title in st.tables.items():
        rows = [(n, r) for n, r in doc["rows"].items() if tid in r["tables"]]
        if not rows:
            continue
        ref_name = refs.get(tid)
        rows.sort(key=lambda nr: nr[0] != ref_name)  # the reference first
        ref = doc["rows"].get(ref_name)
        for mode in ("nocs", "exact"):
            lines += ["", f"### {title} — IoU mode `{mode}`", "",
                      "| variant | steps | n | " + " | ".join(METRIC_NAMES) + " | FPS |",
                      "|---|---:|---:|" + "---:|" * (len(METRIC_NAMES) + 1)]
            for name, r in rows:
                means, stds = r["mean"].get(mode) or {}, r["std"].get(mode) or {}
                cells = []
                for k in METRIC_KEYS:
                    m, s = means.get(k), stds.get(k)
                    if m is None:
                        cells.append("-")
                        continue
                    cell = f"{m:.1f}" if s is None else f"{m:.1f} ± {s:.1f}"
                    if ref is not None and name != ref_name:
                        rm, rs = (ref["mean"].get(mode) or {}).get(k), (ref["std"].get(mode) or {}).get(k)
                        if rm is not None and within_spread(m, s, rm, rs):
                            cell += " ≈"
                    cells.append(cell)
                fps = "-" if r.get("fps") is None else f"{r['fps']:.1f}"
                steps = "given" if r.get("steps") is None else str(r["steps"])
                label = f"**{r['label']}**" if name == ref_name else r["label"]
                lines.append(f"| {label} | {steps} | {r['n_seeds']} | " + " | ".join(cells) + f" | {fps} |")
    return "\n".join(lines) + "\n"
