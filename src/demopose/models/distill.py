"""CleanPose residual knowledge distillation: a frozen 3D teacher's global feature supervises the
student's pooled point feature through a residual adapter.

Lin et al., CleanPose, ICCV 2025 (chrislin0621/CleanPose ``model/Net.py``; notes/cleanpose.md §3.3)::

    g   = mean_n(point features) / |.|                  # (B, d), L2-normalised
    g'  = g + 0.1 * W2 GELU(W1 g)                       # W1 Kaiming, W2 zero-init, no bias
    z_s = g' P                                          # P (d, D) ~ N(0, D^-1/2)
    z_t = teacher(unit-sphere(points))                  # (B, D), frozen, eval, no grad
    L   = 0.01 * mean_b |z_s - z_t|_2                   # loss in demopose.models.cleanpose

Fixes of the release (notes §3.4): the teacher is always in eval mode (``train()`` is overridden) and
never receives gradients; its input is unit-sphere normalised as in ULIP pre-training; teacher
features can be cached per instance (key: the batch's ``instance_index``, which
:class:`~demopose.data.instances.InstanceDataset` adds to every sample), so an epoch pays for the
teacher once. The cache ignores augmentation (the first seen view stands for the instance). It belongs
to one set of teacher weights: :meth:`FrozenTeacher.fingerprint` (a hash of the weights) is checked
before every cached lookup and a different fingerprint empties the cache.

Teachers (interface ``teacher(pts (B, N, 3)) -> (B, D)`` with ``out_channels``): ``pointbert``
(ULIP-2 Point-BERT, :mod:`demopose.models.pointbert`, from a local checkpoint), ``pretrained`` (the
offline default: a Point-BERT that ``demopose pretrain-teacher`` trained on the synthetic generator's
meshes, :mod:`demopose.models.point_teacher`; its size is read from the file) and ``tiny`` (a small
random Point-BERT for plumbing tests).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DistillOptions", "FrozenTeacher", "ResidualDistillation", "build_teacher", "resolve_teacher_file",
           "unit_sphere"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillOptions:
    """Residual distillation options of a model (``model.args.distill``; CleanPose and DeMo-Pose).

    Attributes:
        enabled: add the KD branch and loss (training only; inference does not run the teacher).
        teacher: ``pretrained`` (``demopose pretrain-teacher``) | ``pointbert`` (ULIP-2) | ``tiny`` (random).
        teacher_checkpoint: its file; teacher_dim: its feature width ``D``.
        cache: cache teacher features per ``instance_index``.
        alpha: residual adapter scale (0.1); kd_weight: loss weight (CleanPose's 0.01).
    """

    enabled: bool = False
    teacher: str = "pretrained"
    teacher_checkpoint: str | None = None
    teacher_dim: int = 64
    cache: bool = True
    alpha: float = 0.1
    kd_weight: float = 0.01


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
        self._token: tuple | None = None
        self._fingerprint = ""

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)

    def _state_token(self) -> tuple:
        # identity, storage and autograd version counter of every tensor: changes with load_state_dict,
        # in-place updates, .to() and replaced parameters (not with writes through ``.data``)
        return tuple((id(v), v.data_ptr(), v._version) for v in self.encoder.state_dict(keep_vars=True).values())

    def fingerprint(self) -> str:
        """SHA-1 (16 hex digits) of the weights (names, shapes, dtypes, values; device-independent).

        Recomputed only when a tensor of the encoder was replaced or modified in place since the last call.
        """
        token = self._state_token()
        if token != self._token:
            h = hashlib.sha1()
            for k, v in self.encoder.state_dict().items():
                h.update(f"{k}:{tuple(v.shape)}:{v.dtype};".encode())
                h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            self._token, self._fingerprint = token, h.hexdigest()[:16]
        return self._fingerprint

    @torch.no_grad()
    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        return self.encoder(pts)


def resolve_teacher_file(checkpoint: str | Path) -> Path:
    """The teacher file ``checkpoint`` names: ``asset:NAME`` is the teacher shipped in the package
    (:func:`demopose.assets.asset_path`, the portable form shipped checkpoints store); a path that does not exist
    whose file name is a shipped asset falls back to that asset, with a warning (a checkpoint trained with the
    packaged teacher of another installation stores that installation's absolute path; the teacher's weights
    themselves come from the checkpoint, the file only gives its architecture). Any other path is returned as given
    (a missing one then fails where it is read, naming it)."""
    from demopose.assets import asset_path, list_assets

    text = str(checkpoint)
    if text.startswith("asset:"):
        return asset_path(text[len("asset:"):])
    p = Path(text)
    if not p.is_file() and p.name in list_assets():
        log.warning("teacher_checkpoint %s does not exist: using the teacher shipped in the package (%s)", p,
                    asset_path(p.name))
        return asset_path(p.name)
    return p


def build_teacher(name: str, checkpoint: str | Path | None = None, dim: int = 768) -> FrozenTeacher:
    """``pointbert`` (ULIP-2 sizes; ``checkpoint`` a local ULIP file) | ``pretrained`` (``checkpoint`` a
    file of ``demopose pretrain-teacher``, required) | ``tiny`` (width ``dim // 2``, depth 2, 32 groups x 16;
    random)."""
    from demopose.models.pointbert import PointBERT, load_ulip_pointbert

    if name == "pretrained":
        from demopose.models.point_teacher import load_teacher

        if not checkpoint:
            raise ValueError("teacher 'pretrained' needs teacher_checkpoint=FILE (from `demopose pretrain-teacher`)")
        enc = load_teacher(resolve_teacher_file(checkpoint))[0]
    elif name == "pointbert":
        enc = PointBERT()
        if checkpoint:
            load_ulip_pointbert(enc, checkpoint)
        else:
            log.warning("distillation teacher 'pointbert' has no checkpoint: it is randomly initialised")
    elif name == "tiny":
        enc = PointBERT(width=dim // 2, depth=2, heads=2, num_group=32, group_size=16, encoder_dims=64)
    else:
        raise ValueError(f"teacher: expected 'pointbert', 'pretrained' or 'tiny', got {name!r}")
    if enc.out_channels != dim:
        raise ValueError(f"teacher_dim: the {name} teacher gives {enc.out_channels} channels, config says {dim}")
    return FrozenTeacher(enc)


class ResidualDistillation(nn.Module):
    """Student adapter + frozen teacher (module docstring).

    Args:
        student_dim: ``d`` of the pooled student feature; teacher: a :class:`FrozenTeacher`.
        alpha: residual scale (0.1); cache: keep teacher features per ``instance_index`` (CPU memory:
            ``4 D`` bytes per training instance), for the current teacher fingerprint only.

    ``teacher_calls`` counts the instances the teacher has encoded (cache misses included).

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
        self.cache_fingerprint = ""
        self.teacher_calls = 0

    def teacher_features(self, pts: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher targets ``(B, D)`` (from the cache where possible)."""
        if not self.use_cache or keys is None:
            self.teacher_calls += pts.shape[0]
            return self.teacher(unit_sphere(pts))
        fp = self.teacher.fingerprint()
        if fp != self.cache_fingerprint:
            if self.cache:
                log.info("teacher weights changed (%s -> %s): dropping %d cached features", self.cache_fingerprint,
                         fp, len(self.cache))
            self.cache, self.cache_fingerprint = {}, fp
        ks = [int(k) for k in keys.reshape(-1).tolist()]
        miss = [i for i, k in enumerate(ks) if k not in self.cache]
        if miss:
            self.teacher_calls += len(miss)
            z = self.teacher(unit_sphere(pts[miss])).detach().cpu()
            for i, zi in zip(miss, z):
                self.cache[ks[i]] = zi
        return torch.stack([self.cache[k] for k in ks]).to(pts.device, pts.dtype)

    def forward(self, g: torch.Tensor, pts: torch.Tensor, keys: torch.Tensor | None = None):
        g = F.normalize(g, dim=-1)
        g = g + self.alpha * self.w2(F.gelu(self.w1(g)))
        return g @ self.proj, self.teacher_features(pts.detach(), keys)
