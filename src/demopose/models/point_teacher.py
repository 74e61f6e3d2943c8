"""The offline distillation teacher: a Point-BERT pretrained on the synthetic generator's meshes.

CleanPose distils a frozen ULIP-2 Point-BERT (notes/cleanpose.md §3); without those weights (offline),
notes §3.6 option 1 recommends a point encoder pretrained on our own shapes with category classification plus a
contrastive term. This module holds the network side: the encoder sizes (:data:`TEACHER_ARCHS`), and the teacher
checkpoint file (``format: demopose-point-teacher``: the encoder's architecture and weights and the training
record), written by :func:`save_teacher` and rebuilt by :func:`load_teacher` (``build_teacher("pretrained",
FILE)``). The pretraining itself (mesh pool, views, objective, loop) is training code:
:mod:`demopose.engine.teacher_pretrain` (``demopose pretrain-teacher``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from demopose.models.pointbert import PointBERT

__all__ = ["TEACHER_ARCHS", "TEACHER_FORMAT", "build_encoder", "load_teacher", "save_teacher"]

TEACHER_FORMAT = "demopose-point-teacher"
"""``format`` field of teacher checkpoints."""

TEACHER_ARCHS: dict[str, dict[str, Any]] = {
    # 64-d output: the teacher size of cleanpose_small (teacher_dim 64)
    "tiny": dict(width=32, depth=2, heads=2, num_group=32, group_size=16, encoder_dims=64, group_widths=(32, 64)),
    # 256-d output: a stronger CPU-trainable teacher
    "small": dict(width=128, depth=4, heads=4, num_group=64, group_size=32, encoder_dims=128,
                  group_widths=(64, 128)),
    # 768-d output: ULIP-2's Point-BERT sizes, the teacher_dim of the full cleanpose model (GPU)
    "ulip2": dict(width=384, depth=12, heads=6, num_group=512, group_size=32, encoder_dims=256,
                  group_widths=(128, 256)),
}
"""Point-BERT sizes by name (output ``2 * width``)."""


def build_encoder(arch: str | dict[str, Any]) -> PointBERT:
    """A Point-BERT of a :data:`TEACHER_ARCHS` name or explicit sizes."""
    if isinstance(arch, str):
        if arch not in TEACHER_ARCHS:
            raise ValueError(f"teacher arch: expected one of {sorted(TEACHER_ARCHS)}, got {arch!r}")
        arch = TEACHER_ARCHS[arch]
    return PointBERT(**arch)


def save_teacher(path: str | Path, encoder: PointBERT, arch: str | dict[str, Any], **meta: Any) -> None:
    """Write a teacher checkpoint atomically: architecture, encoder weights, ``meta`` (training record)."""
    from demopose.io import atomic_path

    sizes = TEACHER_ARCHS[arch] if isinstance(arch, str) else dict(arch)
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    doc = {"format": TEACHER_FORMAT, "version": 1, "arch": dict(sizes), "out_channels": encoder.out_channels,
           "encoder": state, "meta": meta}
    with atomic_path(path) as tmp:
        torch.save(doc, tmp)


def load_teacher(path: str | Path) -> tuple[PointBERT, dict[str, Any]]:
    """Rebuild the encoder of a teacher checkpoint (eval mode). Returns ``(encoder, meta)``.

    Raises:
        FileNotFoundError: no file. ValueError: not a teacher checkpoint, or weights that do not fit.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"teacher checkpoint {p} does not exist (train one with `demopose pretrain-teacher`)")
    try:
        doc = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{p}: not a readable torch file ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != TEACHER_FORMAT:
        raise ValueError(f"{p}: not a demopose teacher checkpoint (expected format {TEACHER_FORMAT!r}; a ULIP file "
                         "goes with teacher=pointbert)")
    arch = doc.get("arch")
    if not isinstance(arch, dict) or set(arch) != set(TEACHER_ARCHS["tiny"]):
        raise ValueError(f"{p}: field 'arch' must give {sorted(TEACHER_ARCHS['tiny'])}, got {arch!r}")
    enc = PointBERT(**{k: tuple(int(x) for x in v) if isinstance(v, (list, tuple)) else int(v)
                       for k, v in arch.items()})
    try:
        enc.load_state_dict(doc["encoder"], strict=True)
    except (RuntimeError, KeyError) as e:
        raise ValueError(f"{p}: encoder weights do not fit the Point-BERT of its 'arch' ({e})") from None
    return enc.eval(), doc.get("meta", {})
