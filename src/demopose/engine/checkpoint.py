"""Atomic, resumable checkpoints: model, optimizer, scheduler, step, RNG states and the config.

A checkpoint is written to a temporary file and moved into place, so a kill mid-write never destroys the
previous one. ``last.pt`` always names the newest complete checkpoint of a run directory.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from demopose.io import atomic_path

__all__ = ["capture_rng_state", "load_checkpoint", "load_model", "load_weights", "restore_rng_state",
           "save_checkpoint", "strip_checkpoint", "unwrap_model"]


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


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (full pickle: only load files you trust).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a demopose checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as e:
        raise ValueError(f"{p}: not a readable torch checkpoint ({e})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{p}: not a demopose checkpoint (no 'model' key)")
    return state


def strip_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Write a weights-only copy of a training checkpoint (model, config, step; no optimiser or RNG state),
    the form that is shipped and loaded by ``demopose test`` and the predictor."""
    state = load_checkpoint(src)
    save_checkpoint(dst, {"model": state["model"], "config": state.get("config"), "step": state.get("step")})


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model a checkpoint was trained as (from its stored config) and load its weights; eval mode.

    Builder arguments that point at other weight files (the model's registered ``pretrained_args``, e.g.
    DeMo-Pose's ``mono_checkpoint``) are dropped: the checkpoint holds those weights too.

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
    args = dict(model_cfg.get("args") or {})
    for k in pretrained_args(name):
        args.pop(k, None)
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    model = build_model(name, **args)
    load_weights(model, path, f"model {name!r}", state=state)
    return model.to(map_location).eval()


def load_weights(module: torch.nn.Module, path: str | Path, what: str = "the model",
                 state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load a checkpoint's weights (``{"model": state_dict}``) into ``module``; returns the checkpoint.

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
    weights = state.get("model", state) if isinstance(state, dict) else state  # bare state dicts too
    try:
        module.load_state_dict(weights)
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit {what} ({str(e).splitlines()[0]})") from e
    return state
