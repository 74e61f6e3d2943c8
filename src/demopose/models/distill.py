"""CleanPose residual knowledge distillation: a frozen 3D teacher's global feature supervises the
student's pooled point feature through a residual adapter.

Lin et al., CleanPose, ICCV 2025 (chrislin0621/CleanPose ``model/Net.py``; notes/cleanpose.md §3.3)::

    g   = mean_n(point features) / |.|                  # (B, d), L2-normalised
    g'  = g + 0.1 * W2 GELU(W1 g)                       # W1 Kaiming, W2 zero-init, no bias
    z_s = g' P                                          # P (d, D) ~ N(0, D^-1/2)
    z_t = teacher(unit-sphere(points))                  # (B, D), frozen, eval, no grad
    L   = 0.01 * mean_b |z_s - z_t|_2                   # loss in demopose.models.agpose

Fixes of the release (notes §3.4): the teacher is always in eval mode (``train()`` is overridden) and
never receives gradients; its input is unit-sphere normalised as in ULIP pre-training; teacher
features can be cached per instance (key: the batch's ``instance_index``), so an epoch pays for the
teacher once. The cache ignores augmentation (the first seen view stands for the instance).

Teachers (interface ``teacher(pts (B, N, 3)) -> (B, D)`` with ``out_channels``): ``pointbert``
(ULIP-2 Point-BERT, :mod:`demopose.models.pointbert`, from a local checkpoint) and ``tiny`` (a small
random Point-BERT for plumbing tests). An offline teacher pretrained on the generator's meshes is
not implemented yet.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FrozenTeacher", "ResidualDistillation", "build_teacher", "unit_sphere"]

log = logging.getLogger(__name__)


def unit_sphere(pts: torch.Tensor) -> torch.Tensor:
    """Centre on the centroid and divide by the largest radius. ``(B, N, 3) -> (B, N, 3)``."""
    p = pts - pts.mean(1, keepdim=True)
    return p / p.norm(dim=-1).amax(1).clamp(min=1e-9)[:, None, None]


class FrozenTeacher(nn.Module):
    """Wraps an encoder: parameters frozen, eval mode whatever ``train()`` says, forward under no_grad."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.out_channels = int(encoder.out_channels)

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)

    @torch.no_grad()
    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        return self.encoder(pts)


def build_teacher(name: str, checkpoint: str | Path | None = None, dim: int = 768) -> FrozenTeacher:
    """``pointbert`` (ULIP-2 sizes; ``checkpoint`` a local ULIP file) | ``tiny`` (width ``dim // 2``,
    depth 2, 32 groups x 16; random)."""
    from demopose.models.pointbert import PointBERT, load_ulip_pointbert

    if name == "pointbert":
        enc = PointBERT()
        if checkpoint:
            load_ulip_pointbert(enc, checkpoint)
        else:
            log.warning("distillation teacher 'pointbert' has no checkpoint: it is randomly initialised")
    elif name == "tiny":
        enc = PointBERT(width=dim // 2, depth=2, heads=2, num_group=32, group_size=16, encoder_dims=64)
    else:
        raise ValueError(f"teacher: expected 'pointbert' or 'tiny', got {name!r}")
    if enc.out_channels != dim:
        raise ValueError(f"teacher_dim: the {name} teacher gives {enc.out_channels} channels, config says {dim}")
    return FrozenTeacher(enc)


class ResidualDistillation(nn.Module):
    """Student adapter + frozen teacher (module docstring).

    Args:
        student_dim: ``d`` of the pooled student feature; teacher: a :class:`FrozenTeacher`.
        alpha: residual scale (0.1); cache: keep teacher features per ``instance_index``.

    ``forward(g (B, d), pts (B, N, 3), keys (B,) | None) -> (z_s (B, D), z_t (B, D))``.
    """

    def __init__(self, student_dim: int, teacher: FrozenTeacher, alpha: float = 0.1, cache: bool = False) -> None:
        super().__init__()
        self.teacher, self.alpha, self.use_cache = teacher, alpha, cache
        D = teacher.out_channels
        self.w1 = nn.Linear(student_dim, student_dim, bias=False)
        self.w2 = nn.Linear(student_dim, student_dim, bias=False)
        nn.init.kaiming_normal_(self.w1.weight)
        nn.init.zeros_(self.w2.weight)
        self.proj = nn.Parameter(torch.randn(student_dim, D) * D**-0.5)
        self.cache: dict[int, torch.Tensor] = {}

    def teacher_features(self, pts: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher targets ``(B, D)`` (from the cache where possible)."""
        if not self.use_cache or keys is None:
            return self.teacher(unit_sphere(pts))
        ks = [int(k) for k in keys.reshape(-1).tolist()]
        miss = [i for i, k in enumerate(ks) if k not in self.cache]
        if miss:
            z = self.teacher(unit_sphere(pts[miss])).detach().cpu()
            for i, zi in zip(miss, z):
                self.cache[ks[i]] = zi
        return torch.stack([self.cache[k] for k in ks]).to(pts.device, pts.dtype)

    def forward(self, g: torch.Tensor, pts: torch.Tensor, keys: torch.Tensor | None = None):
        g = F.normalize(g, dim=-1)
        g = g + self.alpha * self.w2(F.gelu(self.w1(g)))
        return g @ self.proj, self.teacher_features(pts.detach(), keys)
