"""The monocular branch of DeMo-Pose: a GhostNet–PAN–GFL single-stage detector of projected 3D cuboids.

DeMo-Pose (arXiv 2603.27533, ICASSP 2026; seed text ``000``): "a single-stage detector [...] that can
predict projected 3D-keypoints and relative size of objects", GhostNet backbone (Han et al., CVPR 2020),
PAN neck and heads trained with GIoU, Quality Focal and Distribution Focal losses (Li et al., NeurIPS
2020) — the NanoDet design (RangiLyu/nanodet; notes/monocular.md). Pose comes from PnP on the predicted
keypoints and relative size (:mod:`demopose.models.keypoint_pose`); the frozen PAN output is the
"monocular feature map" the fusion model samples at the depth points' pixels.

Pipeline on a ``(B, 3, H_in, W_in)`` letterboxed, normalised image (H_in, W_in multiples of 32):
GhostNet taps at strides 8/16/32 (40/112/960 ch) -> PAN (``pan``: 3 levels) or Ghost-PAN (``ghost_pan``:
+ stride 64) with ``C`` channels -> per-level :class:`~demopose.models.gfl_head.GFLHead` ->
per prior: class scores, box, 9 keypoints (8 corners in NOCS order + centre), relative size.

Variants: ``mono`` (GhostNet 1.0x, Ghost-PAN 96, 416² input, head kernel 5) and ``mono_small`` (GhostNet
0.5x, PAN 64, 320² input, head kernel 3) for CPU experiments and tests.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from demopose.categories import get_table
from demopose.data.detection_samples import letterbox_image, letterbox_matrix
from demopose.data.frame import Frame
from demopose.data.frame_instances import Instances
from demopose.geometry.pose import PoseSet
from demopose.layers.bn_folding import fold_conv_bn
from demopose.layers.nms import multiclass_nms
from demopose.models.assigners import build_assigner
from demopose.models.base import weights_key
from demopose.models.gfl_head import GFLHead, LossWeights, decode_outputs
from demopose.models.ghostnet import GhostNet, load_pretrained
from demopose.models.keypoint_pose import poses_from_keypoints
from demopose.models.pan import build_neck
from demopose.models.registry import config_from_overrides, register_model

__all__ = ["DetectionHeadOutputs", "MonoConfig", "MonoDetector", "detections_to_frame",
           "frame_to_input_pixels", "letterbox_frame", "mono", "mono_small", "postprocess_detections"]

log = logging.getLogger(__name__)


def frame_to_input_pixels(uv: torch.Tensor, frame_size: tuple[int, int], input_size: tuple[int, int]) -> torch.Tensor:
    """Original-image pixels ``uv (*, 2)`` of a ``frame_size = (W, H)`` frame -> network-input pixels of the
    letterbox into ``input_size = (W_in, H_in)`` (:func:`~demopose.data.detection_samples.letterbox_matrix`)."""
    M = letterbox_matrix(int(frame_size[0]), int(frame_size[1]), int(input_size[0]), int(input_size[1]))
    return uv * float(M[0, 0]) + float(M[0, 2])


def letterbox_frame(frame: Frame, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The network input of a frame: ``frame.rgb`` letterboxed into ``input_size = (W_in, H_in)`` and normalised
    (:func:`~demopose.data.detection_samples.normalize_image`), ``(3, H_in, W_in)`` float32, and the ``(3, 3)``
    letterbox matrix (original pixels -> input pixels)."""
    M = letterbox_matrix(frame.width, frame.height, int(input_size[0]), int(input_size[1]))
    return letterbox_image(frame.rgb, input_size), M


def postprocess_detections(out: dict[str, torch.Tensor], priors: torch.Tensor, strides: torch.Tensor,
                           image_size: tuple[int, int], cfg: MonoConfig,
                           num_keypoints: int = 9) -> list[dict[str, torch.Tensor]]:
    """Decode raw head outputs and run NanoDet's class-aware NMS per image (shared by the PyTorch model and
    the ONNX Runtime backend, :class:`demopose.export.ort_backend.OrtMonoDetector`).

    Args:
        out: ``cls (B, P, C)``, ``reg (B, P, 4(n+1))``, ``kpt (B, P, 2K)``, ``size (B, P, 3)`` raw outputs.
        priors, strides: ``(P, 2)`` / ``(P,)`` (:func:`~demopose.models.gfl_head.make_priors`).
        image_size: ``(H_in, W_in)`` of the network input (boxes are clamped to it).
        cfg: gives ``reg_max`` and the thresholds.

    Returns:
        per image: ``boxes (M, 4)``, ``labels (M,)`` 0-based, ``scores (M,)``, ``keypoints (M, K, 2)`` (input
        pixels), ``rel_size (M, 3)``.
    """
    dec = decode_outputs(out, priors, strides, cfg.reg_max, num_keypoints)
    H, W = image_size
    res = []
    for b in range(dec["boxes"].shape[0]):
        boxes = dec["boxes"][b].clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(-0.5, W - 0.5)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(-0.5, H - 0.5)
        pi, ci, s = multiclass_nms(boxes, dec["scores"][b], cfg.score_threshold, cfg.iou_threshold,
                                   cfg.max_detections)
        res.append({"boxes": boxes[pi], "labels": ci, "scores": s, "keypoints": dec["keypoints"][b, pi],
                    "rel_size": dec["rel_size"][b, pi]})
    return res


def detections_to_frame(d: dict[str, torch.Tensor], M: np.ndarray, class_ids: np.ndarray) -> Instances:
    """One image's :func:`postprocess_detections` output mapped back through the letterbox ``M`` to original
    pixels; ``class_ids`` maps 0-based labels to category ids."""
    r, off = M[0, 0], M[0, 2]

    def back(a: torch.Tensor) -> np.ndarray:
        return (a.double().cpu().numpy() - off) / r

    return Instances(boxes=back(d["boxes"]), class_ids=class_ids[d["labels"].cpu().numpy()],
                     scores=d["scores"].double().cpu().numpy(), keypoints=back(d["keypoints"]),
                     rel_size=d["rel_size"].double().cpu().numpy())


@dataclass(frozen=True)
class MonoConfig:
    """Architecture and post-processing of the monocular detector.

    Attributes:
        category_table: classes (``C`` = its size) and mean sizes.
        width: GhostNet width multiplier. pretrained: optional local GhostNet checkpoint (never downloaded).
        neck: ``pan`` | ``ghost_pan``. neck_channels: ``C_neck``. num_extra_level: Ghost-PAN extra levels.
        head_convs, head_kernel: tower depth / depthwise kernel. reg_max: box distribution bins − 1.
        assigner: ``atss`` | ``dsl``. input_size: ``(W_in, H_in)`` for :meth:`MonoDetector.predict_frame`.
        score_threshold, iou_threshold, max_detections: NanoDet post-processing (0.05, 0.6, 100).
        loss_weights: see :class:`~demopose.models.gfl_head.LossWeights`.
    """

    category_table: str = "nocs_real"
    width: float = 1.0
    pretrained: str | None = None
    neck: str = "ghost_pan"
    neck_channels: int = 96
    num_extra_level: int = 1
    head_convs: int = 2
    head_kernel: int = 5
    reg_max: int = 7
    assigner: str = "atss"
    input_size: tuple[int, int] = (416, 416)
    score_threshold: float = 0.05
    iou_threshold: float = 0.6
    max_detections: int = 100
    loss_weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        if self.input_size[0] % 32 or self.input_size[1] % 32:
            raise ValueError(f"MonoConfig.input_size: expected multiples of 32, got {self.input_size}")


@dataclass
class DetectionHeadOutputs:
    """The dense outputs of :meth:`MonoDetector.forward` for ``B`` images of ``P`` priors over ``L`` levels, before
    decoding and NMS (:func:`postprocess_detections` turns them into detections).

    Attributes:
        cls: ``(B, P, C)`` class logits. reg: ``(B, P, 4(n+1))`` box side distributions (``n`` = ``reg_max``).
        kpt: ``(B, P, 2K)`` keypoint offsets (``K`` = 9). size: ``(B, P, 3)`` relative size.
        priors: ``(P, 2)`` prior centres in input pixels. strides: ``(P,)``. level_sizes: ``(L,)`` priors per level.
    """

    cls: torch.Tensor
    reg: torch.Tensor
    kpt: torch.Tensor
    size: torch.Tensor
    priors: torch.Tensor
    strides: torch.Tensor
    level_sizes: torch.Tensor

    def head(self) -> dict[str, torch.Tensor]:
        """``{"cls", "reg", "kpt", "size"}``: the raw head tensors by name (:func:`postprocess_detections`)."""
        return {"cls": self.cls, "reg": self.reg, "kpt": self.kpt, "size": self.size}


class MonoDetector(nn.Module):
    """GhostNet–PAN–GFL detector of projected cuboids (module docstring); a
    :class:`~demopose.models.base.Detector`.

    Inference: :meth:`detect_frame` (an :class:`~demopose.data.frame_instances.Instances` with boxes, keypoints
    and relative sizes), :meth:`poses_from_detections`,
    :meth:`predict_frame`. Training: ``forward(batch)`` takes ``batch["image"] (B, 3, H_in, W_in)`` and returns the
    dense :class:`DetectionHeadOutputs` of every prior; ``loss(pred, batch)`` needs the targets of
    :func:`~demopose.data.detection_samples.collate_detection`.
    """

    def __init__(self, config: MonoConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MonoConfig()
        self.categories = get_table(cfg.category_table)
        self.class_ids = np.asarray(self.categories.ids, dtype=np.int64)
        self.backbone = GhostNet(cfg.width)
        if cfg.pretrained:
            load_pretrained(self.backbone, cfg.pretrained)
        self.neck = build_neck(cfg.neck, self.backbone.out_channels, cfg.neck_channels, cfg.num_extra_level)
        strides = list(self.backbone.strides)
        for _ in range(getattr(self.neck, "num_extra_level", 0)):
            strides.append(strides[-1] * 2)
        self.strides = tuple(strides)
        self.head = GFLHead(len(self.categories), cfg.neck_channels, self.strides, cfg.neck_channels,
                            cfg.head_convs, cfg.head_kernel, cfg.reg_max, loss_weights=cfg.loss_weights)
        self.assigner = build_assigner(cfg.assigner)
        self._frozen = False

    @property
    def image_size(self) -> tuple[int, int]:
        """``(W_in, H_in)`` of the letterboxed frame the detector reads (:attr:`MonoConfig.input_size`)."""
        return tuple(self.config.input_size)  # type: ignore[return-value]

    @property
    def cfg(self) -> MonoConfig:
        """Deprecated name of :attr:`config` (one release)."""
        warnings.warn("MonoDetector.cfg is deprecated: use MonoDetector.config", DeprecationWarning, stacklevel=2)
        return self.config

    # -- the monocular feature map --------------------------------------------------------------------------
    def feature_map(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The PAN outputs — DeMo-Pose's "monocular feature map": a list of ``(B, C_neck, H_in/s, W_in/s)``
        for ``s`` in :attr:`strides` (finest, stride 8, first). ``images (B, 3, H_in, W_in)`` as produced by
        :func:`~demopose.data.detection_samples.normalize_image` after the letterbox. To sample a level at the
        depth points' pixels, map them with :func:`frame_to_input_pixels` and call
        :func:`demopose.layers.feature_sampling.sample_feature_map` with ``image_size = (H_in, W_in)``: its
        pixel-centre convention reads cell ``j`` of a stride-``s`` level exactly at the head's prior
        ``u = (j + 0.5)·s − 0.5``."""
        return self.neck(self.backbone(images))

    def inference_feature_map(self, images: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`feature_map` for inference without gradients, through the folded copy of :meth:`_folded`
        (equal up to float rounding; on CPU the levels come back in NHWC memory, same shapes). In training,
        with gradients, or while exporting (the ONNX graph folds by itself), this is :meth:`feature_map`."""
        folded = self._folded(images)
        return self.feature_map(images) if folded is None else _folded_levels(folded[0], images)

    def _levels_and_head(self, images: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """The PAN levels and the head's outputs, through the folded copies where they apply (:meth:`_folded`;
        the levels may then be NHWC in memory)."""
        folded = self._folded(images)
        if folded is None:
            feats = self.feature_map(images)
            return feats, self.head(feats)
        feats = _folded_levels(folded[0], images)
        return feats, folded[1](feats)

    def _folded(self, images: torch.Tensor) -> tuple[nn.Module, nn.Module] | None:
        """Copies of backbone + neck and of the head with every BatchNorm folded into its convolution,
        computing in NHWC on CPU (:func:`~demopose.layers.bn_folding.fold_conv_bn`; the time saved is in
        BENCHMARKS.md, ``benchmarks/detector_inference.py``), made on first use and
        again whenever a weight changes; None where they do not apply (training, gradients, export, weights
        created in inference mode, whose changes cannot be seen) or cannot be made (a network ``torch.fx``
        cannot trace: then never tried again)."""
        parts = (self.backbone, self.neck, self.head)
        if (any(p.training for p in parts) or torch.is_grad_enabled() or torch.compiler.is_exporting()
                or torch.compiler.is_compiling() or torch.jit.is_tracing() or self.__dict__.get("_not_foldable")):
            return None
        cpu = images.device.type == "cpu"
        weights = weights_key(*parts)
        if weights is None:
            return None
        key = (weights, cpu)
        cached = self.__dict__.get("_folded_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            folded = (fold_conv_bn(_FeatureMap(self.backbone, self.neck), channels_last=cpu),
                      fold_conv_bn(self.head, channels_last=cpu,
                                   concrete_args={"feats": [fx.PH] * len(self.strides)}))
        except Exception as exc:  # noqa: BLE001 - any tracing failure: the modules as written still work
            log.warning("detector: no BatchNorm-folded copy (%s: %s); running the modules as written",
                        type(exc).__name__, exc)
            self.__dict__["_not_foldable"] = True
            return None
        # a plain attribute: not a submodule, not in state_dict
        self.__dict__["_folded_cache"] = ((weights.pin(), cpu), folded)
        return folded

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_folded_cache", None)  # derived; rebuilt on first use after unpickling
        return state

    def freeze(self) -> MonoDetector:
        """Eval mode (BN running statistics) and no gradients, kept by later ``train()`` calls."""
        self._frozen = True
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> MonoDetector:
        return super().train(False if self._frozen else mode)

    # -- training -------------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> DetectionHeadOutputs:
        """The head outputs of every prior of ``batch["image"] (B, 3, H_in, W_in)`` (what :meth:`loss` reads)."""
        feats, out = self._levels_and_head(batch["image"])
        priors, strides, counts = self.head.priors_for(feats)
        return DetectionHeadOutputs(cls=out["cls"], reg=out["reg"], kpt=out["kpt"], size=out["size"], priors=priors,
                                    strides=strides, level_sizes=torch.tensor(counts))

    def loss(self, pred: DetectionHeadOutputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """GFL losses (quality focal, distribution focal, GIoU, keypoints, size) against the targets of
        :func:`~demopose.data.detection_samples.collate_detection`."""
        return self.head.loss(pred.head(), pred.priors, pred.strides, [int(c) for c in pred.level_sizes], batch,
                              self.assigner)

    # -- inference ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def detect_images(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Post-processed detections per image, in input pixels: ``boxes (M, 4)``, ``labels (M,)`` 0-based,
        ``scores (M,)``, ``keypoints (M, 9, 2)``, ``rel_size (M, 3)``."""
        return self._detect(images)[0]

    def _detect(self, images: torch.Tensor) -> tuple[list[dict[str, torch.Tensor]], list[torch.Tensor]]:
        """:meth:`detect_images` and the PAN levels it computed on the way."""
        feats, out = self._levels_and_head(images)
        feats = [f.contiguous() for f in feats]
        priors, strides, _ = self.head.priors_for(feats)
        dets = postprocess_detections({k: out[k] for k in ("cls", "reg", "kpt", "size")}, priors, strides,
                                      tuple(images.shape[-2:]), self.config, self.head.num_keypoints)
        return dets, feats

    @torch.no_grad()
    def detect_frame(self, frame: Frame, device: torch.device | str | None = None) -> Instances:
        """Letterbox ``frame.rgb`` to :attr:`MonoConfig.input_size`, detect, map back to original pixels (the PAN
        levels are kept in ``Instances.features``)."""
        image, M = letterbox_frame(frame, self.config.input_size)
        device = device or next(self.parameters()).device
        x = torch.from_numpy(image)[None].to(device)
        was = self.training
        if was:  # switching modes walks every module: only when needed
            self.eval()
        try:
            dets, feats = self._detect(x)
        finally:
            if was:
                self.train(True)
        det = detections_to_frame(dets[0], M, self.class_ids)
        det.features = dict(enumerate(feats))
        return det

    def poses_from_detections(self, frame: Frame, det: Instances, use_depth: bool = True) -> PoseSet:
        """PnP + scale (depth median ratio when ``use_depth`` and the frame has depth, else category mean)."""
        depth = frame.depth if use_depth and frame.depth is not None and np.any(frame.depth > 0) else None
        return poses_from_keypoints(det.keypoints, det.rel_size, det.class_ids, det.scores, frame.K,
                                    self.categories, boxes=det.boxes, depth=depth)

    def predict_frame(self, frame: Frame, device: torch.device | str | None = None) -> PoseSet:
        """Detect and estimate every object's 9-DoF pose in ``frame`` (a :class:`PoseSet`)."""
        return self.poses_from_detections(frame, self.detect_frame(frame, device))


def _folded_levels(folded_feature_map: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The PAN levels through the folded backbone + neck (NHWC input on CPU, where the copy computes in NHWC)."""
    if images.device.type == "cpu":
        images = images.contiguous(memory_format=torch.channels_last)
    return list(folded_feature_map(images))


class _FeatureMap(nn.Module):
    """Backbone then neck as one module (what :func:`fold_conv_bn` traces)."""

    def __init__(self, backbone: nn.Module, neck: nn.Module) -> None:
        super().__init__()
        self.backbone, self.neck = backbone, neck

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.neck(self.backbone(images))


def _build(base: MonoConfig, overrides: dict[str, Any]) -> MonoDetector:
    return MonoDetector(config_from_overrides(base, overrides))


@register_model("mono", pretrained_args=("pretrained",))
def mono(**overrides: Any) -> MonoDetector:
    """GhostNet-1.0x, Ghost-PAN(96) + stride-64 level, kernel-5 heads, 416² input (NanoDet-Plus-m)."""
    return _build(MonoConfig(), overrides)


@register_model("mono_small", pretrained_args=("pretrained",))
def mono_small(**overrides: Any) -> MonoDetector:
    """GhostNet-0.5x, PAN(64), kernel-3 heads, 320² input: CPU experiments and tests."""
    return _build(MonoConfig(width=0.5, neck="pan", neck_channels=64, num_extra_level=0, head_kernel=3,
                             input_size=(320, 320)), overrides)
