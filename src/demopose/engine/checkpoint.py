"""Atomic, resumable checkpoints: model, optimizer, scheduler, step, RNG states and the config.

A checkpoint is written to a temporary file and moved into place, so a kill mid-write never destroys the
previous one. ``last.pt`` always names the newest complete checkpoint of a run directory; the one before it is
kept as ``last.prev.pt`` (a hard link, no copy), so a ``last.pt`` damaged after it was written (a disk error, a
bad copy) still leaves a checkpoint to resume from (:func:`find_resume_checkpoint`).

Loading never runs code from the file: every checkpoint is read weights-only (``torch.load(weights_only=True)``
through :func:`demopose.io.load_torch_file`): tensors and plain Python values, plus the explicit allow-list
:data:`~demopose.io.TRAINING_STATE_GLOBALS` (NumPy arrays, dtypes and scalars: data only, nothing callable), which
a training checkpoint's RNG state needs, so that ``last.pt`` resumes and can be tested or used for prediction.
``strict=True`` allows tensors and plain values only. A file holding anything else (a ``__reduce__`` payload,
a pickled class) is refused before any of it runs, naming the file and the type.

Config versions: a checkpoint records the version of the config schema it was written with
(``state["config_version"]``, :data:`CONFIG_VERSION`; a file without one is version 1). :func:`load_checkpoint`
upgrades an older stored config to the current schema (:func:`upgrade_config`: each model family says how its
builder arguments changed, ``register_model(args_upgrades=...)``), so everything that reads a checkpoint's config
(``load_model``, resuming, ``demopose test``) sees today's keys and rebuilds the network the file was trained as.

- Version 1: the original schema.
- Version 2: CleanPose's front-door / distillation options nested (``causal: {enabled, ...}``,
  ``distill: {enabled, ...}``) and its ``mlp_layout`` (default ``upstream``; a version-1 network is
  ``batchnorm``), :func:`demopose.models.cleanpose.upgrade_args_v1`.
- Version 3: ``data.input_size`` removed: the data pipeline reads the detector's input size from the model
  (``model.args.input_size``); :func:`_drop_data_input_size`.
- Version 4: DeMo-Pose's ``rgb_norm`` (default ``layernorm``; a version-3 network fused the raw PAN features,
  ``none``), :func:`demopose.models.demopose.upgrade_args_v3`.
- Version 5: ``data.test_subset``, the split ``demopose test`` scores, apart from ``data.val_subset`` (the split
  training validates on); a version-4 config tested on its ``val_subset``, which it keeps as ``test_subset``,
  :func:`_add_test_subset`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from demopose.io import TRAINING_STATE_GLOBALS, atomic_path, load_torch_file, load_weights_file, write_bytes_atomic

__all__ = ["CONFIG_VERSION", "LOGISTICS_KEYS", "ResumePoint", "capture_rng_state", "check_resume_config",
           "find_resume_checkpoint", "load_checkpoint", "load_model", "load_training_checkpoint", "load_weights",
           "remove_partial_checkpoints", "restore_rng_state", "save_checkpoint", "strip_checkpoint", "unwrap_model",
           "upgrade_config"]

log = logging.getLogger(__name__)

CONFIG_VERSION = 5
"""Version of the config schema this code writes into checkpoints (``state["config_version"]``; module
docstring for the history)."""


def upgrade_config(config: dict[str, Any], version: int) -> dict[str, Any]:
    """A run config stored under config ``version`` in today's schema (:data:`CONFIG_VERSION`); a copy.

    One version after the other, the run-config steps (:data:`_RUN_UPGRADES`) and the model family's registered
    ``args_upgrades`` (for ``config["model"]["args"]``) are applied.

    Raises:
        ValueError: ``version`` is newer than this code knows (the checkpoint comes from a newer demopose).
    """
    version = int(version)
    if version > CONFIG_VERSION:
        raise ValueError(f"config version {version} is newer than this demopose understands ({CONFIG_VERSION}); "
                         f"update demopose to load this checkpoint")
    out = copy.deepcopy(config)
    if not isinstance(out, dict):
        return out
    for v in range(version, CONFIG_VERSION):
        if v in _RUN_UPGRADES:
            out = _RUN_UPGRADES[v](out)
        model = out.get("model")
        if not isinstance(model, dict) or not model.get("name"):
            continue
        from demopose.models import registry  # importing demopose.models registers every family and its upgrades

        step = registry.args_upgrade(str(model["name"]), v)
        if step is not None:
            model["args"] = step(dict(model.get("args") or {}))
    return out


def _drop_data_input_size(config: dict[str, Any]) -> dict[str, Any]:
    """Version 2 -> 3: ``data.input_size`` (kept equal to ``model.args.input_size`` by hand) is gone; the data
    pipeline reads the model's input size."""
    data = config.get("data")
    if isinstance(data, dict):
        data.pop("input_size", None)
    return config


def _add_test_subset(config: dict[str, Any]) -> dict[str, Any]:
    """Version 4 -> 5: ``data.test_subset`` is new; a version-4 run was tested on its ``data.val_subset``."""
    data = config.get("data")
    if isinstance(data, dict) and "test_subset" not in data and "val_subset" in data:
        data["test_subset"] = data["val_subset"]
    return config


_RUN_UPGRADES: dict[int, Any] = {2: _drop_data_input_size, 4: _add_test_subset}
"""``{v: fn}``: ``fn`` turns a whole run config of version ``v`` into version ``v + 1`` (in place, returned)."""


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside DistributedDataParallel / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def capture_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any], keep_previous: bool = False) -> None:
    """``torch.save`` ``state`` to ``path`` atomically.

    The file is serialised in memory first, so a full disk or a read-only folder raises an ``OSError`` that
    names ``path`` and says what is wrong (torch's own writer reports only "file write failed").

    Args:
        keep_previous: keep the file being replaced as ``<stem>.prev<suffix>`` (a hard link where the file
            system has them, so no copy), the fallback of :func:`find_resume_checkpoint`.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    if keep_previous and path.is_file():
        prev = _previous(path)
        with atomic_path(prev) as tmp:
            tmp.unlink()
            try:
                os.link(path, tmp)
            except OSError:  # no hard links here (some network / FAT file systems): a copy
                tmp.write_bytes(path.read_bytes())
    write_bytes_atomic(path, buf.getvalue())


def _previous(path: Path) -> Path:
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    strict: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, weights-only (no code of the file runs); its stored
    config comes back in today's schema (:func:`upgrade_config`, ``state["config_version"]`` set to
    :data:`CONFIG_VERSION`).

    Args:
        strict: tensors and plain Python values only; by default the NumPy data types of a training checkpoint's
            RNG state are allowed too (:data:`~demopose.io.TRAINING_STATE_GLOBALS`).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable demopose checkpoint, or holds a type outside the allow-list
            (:class:`~demopose.io.UnsafeFileError`, naming the file and the type).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist" + (" (it is a folder)" if p.is_dir() else ""))
    state = load_torch_file(p, map_location, allow=() if strict else TRAINING_STATE_GLOBALS)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{p}: not a demopose checkpoint (no 'model' key)")
    version = int(state.get("config_version", 1))
    if isinstance(state.get("config"), dict) and version != CONFIG_VERSION:
        try:
            state["config"] = upgrade_config(state["config"], version)
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None
        log.debug("%s: stored config upgraded from version %d to %d", p, version, CONFIG_VERSION)
    state["config_version"] = CONFIG_VERSION
    return state


def load_training_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A run's own training checkpoint (``last.pt``, ``best.pt``) with its optimiser and RNG state (weights-only
    with the allow-list of :func:`load_checkpoint`); a weights-only file such as ``model_final.pt`` is refused."""
    state = load_checkpoint(path, map_location)
    missing = [k for k in ("optimizer", "step") if k not in state]
    if missing:
        raise ValueError(f"{path}: not a training checkpoint (no {', '.join(missing)}: a weights-only file such as "
                         f"model_final.pt cannot be resumed; use train.init_from to start from its weights)")
    return state


_PARTIAL = re.compile(r"^\.(last|best|model_final|last\.prev)\.pt\.\w{8}(\.pt)?$")


def remove_partial_checkpoints(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files that killed checkpoint writes leave in ``run_dir`` (``.last.pt.<random>.pt``
    ...); returns them. Call it only while no process writes checkpoints there."""
    d = Path(run_dir)
    removed = []
    if d.is_dir():
        for f in d.iterdir():
            if _PARTIAL.match(f.name) and f.is_file():
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
                removed.append(f)
    if removed:
        log.warning("removed %d partial checkpoint file(s) left by an interrupted write in %s: %s", len(removed), d,
                    ", ".join(f.name for f in removed))
    return removed


@dataclass
class ResumePoint:
    """The checkpoint a run resumes from: its ``path``, its loaded ``state`` and the files passed over
    (``skipped``: ``(path, reason)``, e.g. a damaged ``last.pt``)."""

    path: Path
    state: dict[str, Any]
    skipped: list[tuple[Path, str]]

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))


def find_resume_checkpoint(run_dir: str | Path, map_location: str | torch.device = "cpu",
                           remove_partials: bool = True) -> ResumePoint | None:
    """The newest complete training checkpoint of ``run_dir``: ``last.pt``, or when it cannot be read the
    newest readable of ``last.prev.pt`` and ``best.pt`` (with a warning naming the damaged file); None when
    the run has no checkpoint. Partial files of interrupted writes are removed first (``remove_partials``:
    only on the process that writes the checkpoints).

    Raises:
        ValueError: checkpoints exist but none can be read (each named with its reason).
    """
    d = Path(run_dir)
    if remove_partials:
        remove_partial_checkpoints(d)
    last = d / "last.pt"
    candidates = [last, _previous(last), d / "best.pt"]
    present = [c for c in candidates if c.is_file()]
    if not present:
        return None
    skipped: list[tuple[Path, str]] = []
    loaded: list[tuple[Path, dict[str, Any]]] = []
    for c in present:
        try:
            loaded.append((c, load_training_checkpoint(c, map_location)))
        except ValueError as e:
            skipped.append((c, str(e)))
        if loaded and loaded[0][0] == last:
            break  # the normal case: last.pt is fine
    if not loaded:
        raise ValueError(f"{d}: no readable checkpoint to resume from: " +
                         "; ".join(reason for _, reason in skipped) +
                         " (start over with --no-resume, or another output folder)")
    path, state = max(loaded, key=lambda ps: int(ps[1].get("step", 0)))
    for bad, reason in skipped:
        log.warning("cannot resume from %s (%s); falling back to %s (step %d), the newest complete checkpoint",
                    bad, reason, path, int(state.get("step", 0)))
    return ResumePoint(path, state, skipped)


LOGISTICS_KEYS = ("train.max_steps", "train.eval_every", "train.checkpoint_every", "train.log_every",
                  "train.num_workers", "train.precision", "train.precise_bn", "train.precise_bn_batches",
                  "train.val_frames", "train.device", "data.root", "data.test_subset", "output.dir", "eval.")
"""Config keys (``eval.``: every key under it) that may change when a run is resumed: run length, cadence of
evaluation / checkpoints / logs, loader workers, precision and the BatchNorm statistics recomputed for evaluation,
device, where the data and the run are, the split
``demopose test`` scores. Every other key (model, training and validation subsets, augmentation, optimiser,
schedule, batch, seed ...) changes what the run means."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def _is_logistics(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in LOGISTICS_KEYS)


def check_resume_config(saved: Any, current: Any, source: str | Path, allow_changed: bool = False
                        ) -> dict[str, dict[str, Any]]:
    """Compare the config a checkpoint was trained with (``saved``) with the one of the resuming command.

    Returns ``{key: {"was": old, "now": new, "kind": "logistics" | "meaning"}}`` for every changed dotted key
    (empty when ``saved`` holds no config). Logistics keys (:data:`LOGISTICS_KEYS`) may change.

    Raises:
        ValueError: a key that changes the run's meaning differs and ``allow_changed`` is False; the message
            names ``source``, each key with both values, and the ways out.
    """
    if not isinstance(saved, dict) or not isinstance(current, dict):
        return {}
    old, new = _flatten(saved), _flatten(current)
    changes = {k: {"was": old.get(k), "now": new.get(k), "kind": "logistics" if _is_logistics(k) else "meaning"}
               for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
    meaning = {k: c for k, c in changes.items() if c["kind"] == "meaning"}
    if meaning and not allow_changed:
        listed = "; ".join(f"{k}: {c['was']!r} -> {c['now']!r}" for k, c in meaning.items())
        raise ValueError(f"{source}: the run was trained with other settings than this command gives ({listed}); "
                         f"resuming would mix two runs. Use the run's settings, or pass --allow-changed-config to "
                         f"continue with the new ones (recorded in the run's resumes.jsonl), or --no-resume / "
                         f"another --out to start a new run")
    return changes


def strip_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Write a weights-only copy of a training checkpoint (model, config, step; no optimiser or RNG state),
    the form that is shipped and loaded by ``demopose test`` and the predictor."""
    state = load_checkpoint(src)
    save_checkpoint(dst, {"model": state["model"], "config": state.get("config"), "step": state.get("step"),
                          "config_version": state["config_version"]})


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model a checkpoint was trained as (from its stored config) and load its weights; eval mode.

    Builder arguments that point at other weight files (the model's registered ``pretrained_args``, e.g.
    DeMo-Pose's ``mono_checkpoint``, CleanPose's ``causal.dict_init``) are dropped: the checkpoint holds those
    weights too. The stored config is in today's schema (:func:`load_checkpoint` upgrades older ones).

    Raises:
        ValueError: the checkpoint has no stored model config, or its weights do not fit the model.
    """
    from demopose.models import build_model
    from demopose.models.registry import pretrained_args

    state = load_checkpoint(path, map_location)
    cfg = state.get("config") or {}
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if not model_cfg or "name" not in model_cfg:
        raise ValueError(f"{path}: no stored model config ('config.model.name'); rebuild the model from its "
                         f"training config and load_state_dict(state['model']) instead")
    name = str(model_cfg["name"])
    args = copy.deepcopy(dict(model_cfg.get("args") or {}))
    for k in pretrained_args(name):
        *parents, leaf = k.split(".")
        node = args
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    model = build_model(name, **args)
    load_weights(model, path, f"model {name!r}", state=state)
    return model.to(map_location).eval()


def load_weights(module: torch.nn.Module, path: str | Path, what: str = "the model",
                 state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load a checkpoint's weights (``{"model": state_dict}``) into ``module``; returns the checkpoint.

    Weights-only (:func:`load_checkpoint`): nothing of the file can run.

    Args:
        what: names the receiving model in the error message.
        state: the already loaded checkpoint of ``path`` (saves reading it twice); a bare state dict works too.

    Raises:
        FileNotFoundError / ValueError: no file, not a checkpoint, or weights that do not fit ``module``.
    """
    if state is None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{what}: checkpoint {path} does not exist")
        state = load_checkpoint(path)
    return load_weights_file(module, path, what, state)
