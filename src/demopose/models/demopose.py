"""DeMo-Pose: monocular PAN features fused into the GPV-Pose 3D graph-convolution network, plus the MPL.

DeMo-Pose (arXiv 2603.27533, ICASSP 2026; seed text ``000`` §2.3–2.4): the monocular detector
(:mod:`demopose.models.mono`) is trained first and **frozen**; its PAN output ``(C1, H/8, W/8)`` is
bilinearly sampled at the pixel of each of the ``N`` depth points (``N × C1``,
:func:`demopose.layers.feature_sampling.sample_feature_map`) and fused with the 3D-GC per-point features
(``N × C2``) of GPV-Pose (concatenation by default, :mod:`demopose.models.fusion`); a Mesh-Point head,
present in training mode only, is supervised by the Mesh-Point Loss (``λ = 2000``,
:mod:`demopose.models.mesh_point_loss`).

Batch (``InstanceDataset(image_size=model.image_size)`` or :func:`demopose.pipeline.predict_frame`):
everything :class:`~demopose.models.gpv.GPVPose` reads, plus

- ``image`` ``(F, 3, H_in, W_in)``: the letterboxed, normalised frames
  (:func:`~demopose.data.detection_samples.letterbox_image`), ``F`` <= ``B`` (instances of one frame
  share it);
- ``image_index`` ``(B,)`` int: the frame of each instance (default ``arange(B)``);
- ``image_pixels`` ``(B, N, 2)``: each point's pixel in the letterboxed image
  (:func:`~demopose.models.mono.frame_to_input_pixels` of the original ``pixels``);
- or, instead of ``image``, ``image_features``: the detector's PAN levels of those frames
  (``Instances.features``, ``{level: (F, C1, h, w)}``), so that inference after a detection pass does not
  run the backbone again (:meth:`DeMoPose.point_features`).

The frozen detector stays a submodule, so a DeMo-Pose checkpoint is self-contained: it detects
(:attr:`DeMoPose.mono`) and estimates poses (:attr:`DeMoPose.pose`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from demopose.categories import CategoryTable
from demopose.io import load_weights_file
from demopose.layers.feature_sampling import check_frame_inputs, sample_point_features
from demopose.models.base import PosePrediction
from demopose.models.feature_adjust import (
    AdjustedFusion,
    CausalOptions,
    DistillOptions,
    FeatureAdjust,
)
from demopose.models.mono import MonoDetector
from demopose.models.registry import build_model, config_from_overrides, register_model

__all__ = ["DeMoPose", "DeMoPoseConfig", "demopose", "demopose_small", "upgrade_args_v3"]


@dataclass(frozen=True)
class DeMoPoseConfig:
    """Composition of a DeMo-Pose model.

    Attributes:
        pose_model: registered GPV-family model of the depth branch (``gpv``; ``hs_pose`` also works).
        pose_args: its :class:`~demopose.models.gpv.GPVConfig` overrides (fusion/MPL fields are set here).
        mono_model: registered monocular detector (``mono``).
        mono_args: its :class:`~demopose.models.mono.MonoConfig` overrides.
        mono_checkpoint: a trained detector's checkpoint (``{"model": state_dict}`` or a bare state dict)
            loaded before freezing; None keeps the initial weights (weights then come from a DeMo-Pose
            checkpoint). Ignored by :func:`demopose.engine.checkpoint.load_model`.
        fusion: ``concat`` (paper) | ``add`` | ``hadamard`` | ``mlp`` | ``attention``; None: no RGB
            (then the model is GPV-Pose + MPL).
        rgb_norm: ``layernorm`` (default) | ``none`` (the paper; checkpoints before config version 4): the
            RGB point features' normalisation before the fusion (:mod:`demopose.models.fusion`).
        feature_levels: PAN levels sampled and concatenated (0 = stride 8, the finest).
        mesh_points: Mesh-Point head size ``M`` (1024; 0 disables the MPL).
        mpl_weight: ``λ_MPL`` (2000).
        causal, distill: CleanPose's front-door module and residual distillation on the fused per-point
            features (:mod:`demopose.models.feature_adjust`; ``{enabled: true, ...}``; off by default).
    """

    pose_model: str = "gpv"
    pose_args: Mapping[str, Any] = field(default_factory=dict)
    mono_model: str = "mono"
    mono_args: Mapping[str, Any] = field(default_factory=dict)
    mono_checkpoint: str | None = None
    fusion: str | None = "concat"
    rgb_norm: str = "layernorm"
    feature_levels: tuple[int, ...] = (0,)
    mesh_points: int = 1024
    mpl_weight: float = 2000.0
    causal: Mapping[str, Any] = field(default_factory=dict)
    distill: Mapping[str, Any] = field(default_factory=dict)


class DeMoPose(nn.Module):
    """The DeMo-Pose network (module docstring); a :class:`~demopose.models.base.PoseModel` whose
    ``own_detector`` is the frozen ``mono``. ``model.image_size = (W_in, H_in)`` tells the data pipeline which
    letterboxed image to provide."""

    rgb_size = None  # no instance crop: the colour comes from the whole frame (image_size)

    def __init__(self, config: DeMoPoseConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DeMoPoseConfig()
        mono = build_model(cfg.mono_model, **dict(cfg.mono_args))
        if not isinstance(mono, MonoDetector):
            raise ValueError(f"DeMoPoseConfig.mono_model: {cfg.mono_model!r} is not a monocular detector")
        if cfg.mono_checkpoint:
            load_weights_file(mono, cfg.mono_checkpoint, "the detector (DeMoPoseConfig.mono_checkpoint; train it "
                              "first: demopose train mono_synth_small ..., then point at its model_final.pt)")
        self.mono = mono.freeze()
        n_levels = len(mono.strides)
        for lv in cfg.feature_levels:
            if not 0 <= int(lv) < n_levels:
                raise ValueError(f"DeMoPoseConfig.feature_levels: level {lv} out of range 0..{n_levels - 1}")
        self.levels = tuple(int(lv) for lv in cfg.feature_levels)
        rgb_c = mono.config.neck_channels * len(self.levels) if cfg.fusion else 0
        pose_args = dict(cfg.pose_args) | {"fusion": cfg.fusion, "rgb_channels": rgb_c, "rgb_norm": cfg.rgb_norm,
                                           "mesh_points": int(cfg.mesh_points), "mpl_weight": float(cfg.mpl_weight)}
        self.pose = build_model(cfg.pose_model, **pose_args)
        if mono.config.category_table != self.pose.config.category_table:
            raise ValueError(f"DeMoPose: the detector's categories ({mono.config.category_table}) differ from the pose "
                             f"network's ({self.pose.config.category_table})")
        causal = config_from_overrides(CausalOptions(), cfg.causal, "DeMoPoseConfig.causal")
        distill = config_from_overrides(DistillOptions(), cfg.distill, "DeMoPoseConfig.distill")
        if causal.enabled or distill.enabled:  # CleanPose modules on the fused per-point features (feature_adjust)
            if self.pose.fusion is None:
                raise ValueError("DeMoPoseConfig.causal / distill: they act on the fused features; set a fusion")
            adjust = FeatureAdjust(self.pose.fusion.out_channels, self.pose.num_classes, causal, distill)
            self.pose.fusion = AdjustedFusion(self.pose.fusion, adjust)

    # ------------------------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(W_in, H_in)`` of the letterboxed frame the fusion reads (None without fusion)."""
        return tuple(self.mono.config.input_size) if self.config.fusion else None  # type: ignore[return-value]

    @property
    def mesh_points(self) -> int:
        """Mesh samples per training instance of the Mesh-Point Loss (0: no MPL)."""
        return int(self.config.mesh_points)

    @property
    def categories(self) -> CategoryTable:
        """The category table (the pose network's, which the detector's equals)."""
        return self.pose.categories

    @property
    def own_detector(self) -> MonoDetector:
        """The frozen monocular detector (:attr:`mono`): it finds the objects, and the fusion reuses the feature
        maps of its detections."""
        return self.mono

    @property
    def cfg(self) -> DeMoPoseConfig:
        """Deprecated name of :attr:`config` (one release)."""
        warnings.warn("DeMoPose.cfg is deprecated: use DeMoPose.config", DeprecationWarning, stacklevel=2)
        return self.config

    def warm_start_insert(self) -> tuple[int, int] | tuple[None, None]:
        """Where concatenation inserts the RGB channels into the heads' inputs: ``(C2, C1)``
        (:func:`demopose.engine.warm_start.warm_start` starts the fused heads as the source GPV-Pose)."""
        if self.config.fusion != "concat":
            return None, None
        return int(self.pose.backbone.out_channels), int(self.pose.config.rgb_channels)

    def train(self, mode: bool = True) -> DeMoPose:
        super().train(mode)
        self.mono.train(False)  # frozen: BN statistics fixed
        return self

    @torch.no_grad()
    def point_features(self, images: torch.Tensor | None, image_pixels: torch.Tensor,
                       image_index: torch.Tensor | None = None,
                       features: Mapping[int, torch.Tensor] | None = None) -> torch.Tensor:
        """The monocular features of every point: ``(B, N, C1 · len(levels))``.

        Args:
            images: ``(F, 3, H_in, W_in)`` letterboxed, normalised frames (unused when ``features`` are given).
            image_pixels: ``(B, N, 2)`` points' pixels in those images.
            image_index: ``(B,)`` frame of each instance (default ``arange(B)``, then ``F == B``).
            features: the detector's PAN levels of those frames, ``{level: (F, C_neck, h, w)}``
                (``Instances.features``), so that a detection pass is not run twice.
        """
        check_frame_inputs(images, image_pixels, image_index, features, self.levels, self.mono.config.input_size,
                           self.mono.strides)
        if features is None:
            features = dict(enumerate(self.mono.inference_feature_map(images)))
        W, H = self.mono.config.input_size
        return sample_point_features([features[lv] for lv in self.levels], image_pixels, image_index, (H, W))

    def forward(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> PosePrediction:
        """The pose of every instance; fused models read ``image_pixels`` and ``image`` (or the detector's
        ``image_features``, see :meth:`point_features`)."""
        if self.config.fusion is None:
            return self.pose(batch, generator)
        if "image_pixels" not in batch or ("image" not in batch and "image_features" not in batch):
            raise KeyError("DeMoPose batch: needs 'image_pixels' and 'image' (or the detector's 'image_features'); "
                           "build samples with InstanceDataset(image_size=model.image_size)")
        rgb = self.point_features(batch.get("image"), batch["image_pixels"], batch.get("image_index"),
                                  batch.get("image_features"))
        fusion = self.pose.fusion
        if not isinstance(fusion, AdjustedFusion):
            return self.pose({**batch, "rgb_point_features": rgb}, generator)
        cls = torch.as_tensor(batch["class_ids"], device=rgb.device).long().reshape(-1) - 1
        with fusion.context(cls, batch["points"], batch.get("instance_index"), generator):
            pred = self.pose({**batch, "rgb_point_features": rgb}, generator)
        pred.outputs.update(fusion.outputs)
        return pred

    def loss(self, pred: PosePrediction, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The GPV-Pose terms plus ``mpl`` (:meth:`GPVPose.loss`), plus ``kd`` with distillation."""
        losses = self.pose.loss(pred, batch)
        if isinstance(self.pose.fusion, AdjustedFusion):
            losses.update(self.pose.fusion.adjust.loss(pred.outputs))
        return losses


def _build(base: DeMoPoseConfig, overrides: dict[str, Any]) -> DeMoPose:
    return DeMoPose(config_from_overrides(base, overrides))


def upgrade_args_v3(args: Mapping) -> dict:
    """Builder arguments stored under config version 3 -> version 4: ``rgb_norm: none`` unless set (every
    earlier network fused the raw PAN features; the default is now ``layernorm``)."""
    return {"rgb_norm": "none"} | dict(args)


# files read at construction whose content a trained checkpoint already holds (load_model drops them)
_PRETRAINED_ARGS = ("mono_checkpoint", "causal.dict_init")
_REGISTRATION = dict(pretrained_args=_PRETRAINED_ARGS, args_upgrades={3: upgrade_args_v3})


@register_model("demopose", **_REGISTRATION)
def demopose(**overrides: Any) -> DeMoPose:
    """DeMo-Pose with the paper's settings: GPV-Pose (3D-GC) + frozen ``mono`` (GhostNet-1.0x, Ghost-PAN 96,
    416²), concatenation of the stride-8 PAN features, MPL with 1024 points at λ = 2000."""
    return _build(DeMoPoseConfig(), overrides)


@register_model("demopose_small", **_REGISTRATION)
def demopose_small(**overrides: Any) -> DeMoPose:
    """``gpv_small`` + ``mono_small`` (PAN 64, 320²): CPU experiments, tests and the bundled checkpoint."""
    return _build(DeMoPoseConfig(pose_model="gpv_small", mono_model="mono_small"), overrides)
