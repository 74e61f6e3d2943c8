"""CleanPose's two modules on another network's fused per-point features: the front-door causal
adjustment and the residual knowledge distillation, behind config options (off by default).

CleanPose (Lin et al., ICCV 2025; notes/cleanpose.md §2–§3) applies its front-door module to the 96
keypoint tokens of AG-Pose and distils the pooled point-encoder feature into a frozen 3D teacher. Here
the same modules (:class:`~demopose.models.causal.FrontDoorModule`,
:class:`~demopose.models.distill.ResidualDistillation`) act on the fused per-point features
``F (B, N, C)`` of a network such as DeMo-Pose's GPV-Pose branch (geometry ⊕ monocular RGB), just
before its pose heads:

- **front door** (``causal``): ``F`` is projected to ``d`` channels (``down``); the module refines the
  ``tokens``: ``global`` (one token, the mean of ``down(F)`` over points; cheap) or ``points`` (every
  point a token, as CleanPose's keypoint tokens; attention costs ``O(N^2)``). The change is added back:
  ``F' = F + up(FD(h))`` (per point, or broadcast for the global token). ``up`` starts at zero, so the
  network starts exactly as without the module; the dictionary (``(C, Q, d)`` buffers, FIFO or
  momentum, deterministic at eval) lives in the ``d``-space of the tokens;
- **distillation** (``distill``): the student feature is ``mean_n F`` (before the front door, like
  CleanPose's point-encoder feature) through the residual adapter, regressed onto the frozen teacher's
  feature of the instance's points (unit-sphere normalised, cached per ``instance_index``);
  ``L_kd = kd_weight · mean_b |z_s − z_t|_2`` with CleanPose's weight 0.01.

:class:`AdjustedFusion` plugs :class:`FeatureAdjust` into a model that fuses features with a
:class:`~demopose.models.fusion.PointFusion` (``DeMoPose``: ``model.args.causal.enabled=true``,
``model.args.distill.enabled=true``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from demopose._checks import check_shape
from demopose.models.causal import FrontDoorModule, FrontDoorOptions, init_dictionary
from demopose.models.distill import DistillOptions
from demopose.models.registry import config_from_overrides

__all__ = ["AdjustedFusion", "CausalOptions", "DistillOptions", "FeatureAdjust"]


@dataclass(frozen=True)
class CausalOptions(FrontDoorOptions):
    """Front-door options on fused features (``model.args.causal``): the fields of
    :class:`~demopose.models.causal.FrontDoorOptions` (here ``heads`` 4 and ``ffn`` 256 by default), plus

    Attributes:
        tokens: ``global`` (mean feature) | ``points`` (every point).
        dim: token width ``d`` (the fused features are projected to it).
    """

    heads: int = 4
    ffn: int = 256
    tokens: str = "global"
    dim: int = 128


class FeatureAdjust(nn.Module):
    """Front door and/or distillation on fused per-point features (module docstring).

    Args:
        channels: ``C`` of the fused features; num_classes: categories (0-based indices).
        causal, distill: options (mappings or dataclasses; disabled when None).

    ``forward(feat (B, N, C), class_idx (B,), points (B, N, 3), instance_index (B,) | None) ->
    (feat' (B, N, C), outputs)``; ``outputs`` holds ``kd_student``, ``kd_teacher`` ``(B, D)`` in
    training mode with distillation. :meth:`loss` turns them into ``{"kd": ...}``.
    """

    def __init__(self, channels: int, num_classes: int, causal: CausalOptions | Mapping | None = None,
                 distill: DistillOptions | Mapping | None = None) -> None:
        super().__init__()
        self.causal = c = config_from_overrides(CausalOptions(), causal, "causal")
        self.distill_options = d = config_from_overrides(DistillOptions(), distill, "distill")
        if c.tokens not in ("global", "points"):
            raise ValueError(f"causal.tokens: expected 'global' or 'points', got {c.tokens!r}")
        self.front_door = None
        if c.enabled:
            self.down = nn.Linear(channels, c.dim)
            self.up = nn.Linear(c.dim, channels)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)
            self.front_door = FrontDoorModule(num_classes, c.dim, c.dict_size, c.select_num, c.heads, c.ffn,
                                              c.self_blocks, c.cross_blocks, c.update, c.momentum, c.enqueue)
            if c.dict_init:
                init_dictionary(self.front_door, c.dict_init)
        self.distill = None
        if d.enabled:
            from demopose.models.distill import ResidualDistillation, build_teacher

            teacher = build_teacher(d.teacher, d.teacher_checkpoint, d.teacher_dim)
            self.distill = ResidualDistillation(channels, teacher, alpha=d.alpha, cache=d.cache)

    @property
    def active(self) -> bool:
        return self.front_door is not None or self.distill is not None

    def forward(self, feat: torch.Tensor, class_idx: torch.Tensor, points: torch.Tensor,
                instance_index: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        dims = check_shape(feat, "B N C", "fused features")
        check_shape(points, "B N 3", "points", dims)
        outputs: dict[str, torch.Tensor] = {}
        if self.distill is not None and self.training:
            outputs["kd_student"], outputs["kd_teacher"] = self.distill(feat.mean(1), points, instance_index)
        if self.front_door is not None:
            h = self.down(feat)
            if self.causal.tokens == "global":
                feat = feat + self.up(self.front_door(h.mean(1), class_idx, generator)).unsqueeze(1)
            else:
                feat = feat + self.up(self.front_door(h, class_idx, generator))
        return feat, outputs

    def loss(self, outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"kd": kd_weight · mean_b |z_s − z_t|_2}`` when the outputs hold the distillation pair."""
        if "kd_student" not in outputs:
            return {}
        diff = outputs["kd_student"] - outputs["kd_teacher"]
        return {"kd": self.distill_options.kd_weight * diff.norm(dim=-1).mean()}


class AdjustedFusion(nn.Module):
    """A :class:`~demopose.models.fusion.PointFusion` followed by a :class:`FeatureAdjust`, a drop-in
    replacement of the fusion module of a network that calls ``fusion(geo, rgb)`` once per forward on
    per-point features.

    The instance information the adjustment needs (classes, points, instance indices) is given for the
    duration of one forward with :meth:`context`; the distillation outputs of that forward are then in
    :attr:`outputs`. ``kind`` is ``"<fusion kind>+adjust"`` (so exact rewrites specific to a plain
    fusion kind do not apply).
    """

    def __init__(self, fusion: nn.Module, adjust: FeatureAdjust) -> None:
        super().__init__()
        self.fusion, self.adjust = fusion, adjust
        self.kind = f"{fusion.kind}+adjust"
        self.out_channels = fusion.out_channels
        self._ctx: tuple | None = None
        self.outputs: dict[str, torch.Tensor] = {}

    @contextlib.contextmanager
    def context(self, class_idx: torch.Tensor, points: torch.Tensor, instance_index: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> Iterator[AdjustedFusion]:
        """Make ``class_idx (B,)`` (0-based), ``points (B, N, 3)`` and ``instance_index (B,)`` available
        to the forward passes inside the block."""
        self._ctx, self.outputs = (class_idx.long().reshape(-1), points, instance_index, generator), {}
        try:
            yield self
        finally:
            self._ctx = None

    def forward(self, geo: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        if self._ctx is None:
            raise RuntimeError("AdjustedFusion: call it inside `with fusion.context(class_idx, points, ...)` "
                               "(the front door / distillation need the instances' classes and points)")
        feat = self.fusion(geo, rgb)
        feat, self.outputs = self.adjust(feat, *self._ctx)
        return feat
