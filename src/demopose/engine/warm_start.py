"""Warm start: initialise a model from another checkpoint's weights where they fit.

Used to start DeMo-Pose (or any variant of an ablation) from a trained GPV-Pose: the depth network's
weights are copied, new modules keep their initialisation. Rules, per parameter/buffer of the model:

- the same name (optionally under a ``pose.`` prefix on either side, DeMo-Pose's depth network) and the
  same shape: copied;
- a weight whose input dimension (dim 1) grew by ``width`` channels, all else equal: the source columns
  are copied around a zero block of ``width`` columns inserted at ``position`` — the layout of
  DeMo-Pose's concatenation fusion, ``[geometric C2 | RGB C1 | class one-hot (| xyz)]`` against GPV-Pose's
  ``[geometric C2 | one-hot (| xyz)]``; with zero RGB columns the fused model starts as exactly the
  source GPV-Pose. The model tells the layout through ``warm_start_insert() -> (position, width)``
  (default: append at the end);
- anything else: left as initialised, and reported.
"""

from __future__ import annotations

import logging
import os

import torch

__all__ = ["warm_start"]

log = logging.getLogger(__name__)


def _source_key(key: str, source: dict) -> str | None:
    for cand in (key, key.removeprefix("pose."), "pose." + key):
        if cand in source:
            return cand
    return None


@torch.no_grad()
def warm_start(model: torch.nn.Module, path: str | os.PathLike, state: dict | None = None) -> dict[str, list[str]]:
    """Copy the fitting weights of checkpoint ``path`` into ``model`` (module docstring). ``state``: the
    checkpoint's content when the caller has loaded it already.

    Returns:
        ``{"copied": [...], "widened": [...], "skipped": [...]}`` parameter names.
    """
    from demopose.engine.checkpoint import load_checkpoint

    src = (state if state is not None else load_checkpoint(path))["model"]
    insert = getattr(model, "warm_start_insert", None)
    position, width = insert() if callable(insert) else (None, None)
    report: dict[str, list[str]] = {"copied": [], "widened": [], "skipped": []}
    for key, dst in model.state_dict().items():
        sk = _source_key(key, src)
        if sk is None:
            report["skipped"].append(key)
            continue
        s = src[sk].to(dst.dtype)
        if s.shape == dst.shape:
            dst.copy_(s)
            report["copied"].append(key)
        elif (s.dim() == dst.dim() >= 2 and s.shape[0] == dst.shape[0] and s.shape[2:] == dst.shape[2:]
              and dst.shape[1] > s.shape[1]):
            grow = dst.shape[1] - s.shape[1]
            at = s.shape[1] if position is None or width != grow else int(position)
            dst.zero_()
            dst[:, :at] = s[:, :at]
            dst[:, at + grow:] = s[:, at:]
            report["widened"].append(key)
        else:
            report["skipped"].append(key)
    log.info("warm start from %s: %d copied, %d widened (zero columns for the new inputs), %d left as initialised",
             path, len(report["copied"]), len(report["widened"]), len(report["skipped"]))
    return report
