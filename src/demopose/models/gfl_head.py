"""Per-level GFL heads of the monocular detector: class/quality, box distribution, cuboid keypoints and
relative size, with NanoDet's losses (notes/monocular.md §1.4, §1.5, §3.2, §3.3).

Per feature level (unshared, NanoDet style): ``stacked_convs`` depthwise-separable convs (BN,
LeakyReLU) then one 1×1 conv with ``C + 4·(reg_max+1) + 2·K + 3`` outputs per prior:

* ``C`` class logits (sigmoid, no background); trained with Quality Focal Loss against the IoU of the
  decoded box with its GT (Li et al., "Generalized Focal Loss", NeurIPS 2020);
* ``4·(reg_max+1)`` logits of the distances to the four box sides as discrete distributions in stride
  units (Distribution Focal Loss) decoded by their expectation (GIoU loss on the decoded box);
* ``2·K`` keypoint offsets ``((u_k − p_x)/s, (v_k − p_y)/s)`` for the ``K = 9`` keypoints: the 8
  projected cuboid corners in NOCS corner order (:mod:`demopose.geometry.box3d`) then the projected
  box centre; L1 loss, not clamped (corners may leave the box or the image);
* 3 relative-size logits: ``d̂ = softplus(x) / ‖softplus(x)‖`` (extents over the box diagonal, as the
  NOCS scales); L1 loss.

Loss weights (NanoDet configs): QFL 1, DFL 0.25, GIoU 2; keypoints 1 and size 1 (our choice). GIoU, DFL,
keypoint and size terms are weighted per positive by its detached max class score and normalised by
the sum of those weights (DFL also divided by 4); QFL is normalised by the number of positives.

Convention: prior ``(i, j)`` (row, column) of a stride-``s`` level sits at pixel
``((j + 0.5)·s − 0.5, (i + 0.5)·s − 0.5)`` in integer-pixel-centre coordinates — the point that
``F.grid_sample(..., align_corners=False)`` reads from cell ``(i, j)`` (notes §3.7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from demopose.layers.box_ops import box_iou, giou_loss
from demopose.models.assigners import ATSSAssigner, DynamicSoftLabelAssigner
from demopose.models.pan import DepthwiseSeparableConv

__all__ = ["NUM_KEYPOINTS", "GFLHead", "LossWeights", "box_to_distance", "distance_to_box", "relative_size",
           "decode_outputs", "distribution_focal_loss", "distribution_to_distance", "make_priors", "quality_focal_loss"]

NUM_KEYPOINTS = 9
"""8 projected cuboid corners (NOCS order) + the projected box centre."""


def make_priors(feat_sizes: Sequence[tuple[int, int]], strides: Sequence[int], device=None,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Point priors of all levels: ``(P, 2)`` pixel positions (x, y), ``(P,)`` strides, priors per level.

    Order: level by level, row-major within a level (the order of the flattened head outputs).
    """
    pts, strs, counts = [], [], []
    for (h, w), s in zip(feat_sizes, strides):
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s - 0.5
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s - 0.5
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        pts.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], -1))
        strs.append(torch.full((h * w,), float(s), device=device, dtype=dtype))
        counts.append(h * w)
    return torch.cat(pts), torch.cat(strs), counts


def distribution_to_distance(reg: torch.Tensor, reg_max: int) -> torch.Tensor:
    """``(*, 4·(reg_max+1))`` side logits -> ``(*, 4)`` expected distances (stride units)."""
    prob = F.softmax(reg.reshape(*reg.shape[:-1], 4, reg_max + 1), dim=-1)
    bins = torch.arange(reg_max + 1, device=reg.device, dtype=prob.dtype)
    return (prob * bins).sum(-1)


def decode_outputs(out: dict[str, torch.Tensor], priors: torch.Tensor, strides: torch.Tensor, reg_max: int,
                   num_keypoints: int = NUM_KEYPOINTS) -> dict[str, torch.Tensor]:
    """:meth:`GFLHead.decode` as a function of the raw outputs (also those of the exported ONNX graph).

    Args:
        out: ``cls (B, P, C)``, ``reg (B, P, 4(reg_max+1))``, ``kpt (B, P, 2K)``, ``size (B, P, 3)``.
        priors: ``(P, 2)`` pixels; strides: ``(P,)`` (:func:`make_priors`).

    Returns:
        ``scores (B, P, C)``, ``boxes (B, P, 4)`` and ``keypoints (B, P, K, 2)`` in input pixels,
        ``rel_size (B, P, 3)`` (unit diagonal).
    """
    s = strides[:, None]
    dist = distribution_to_distance(out["reg"], reg_max) * s
    kpt = out["kpt"].reshape(*out["kpt"].shape[:-1], num_keypoints, 2) * s[..., None] + priors[:, None, :]
    return {"scores": out["cls"].sigmoid(), "boxes": distance_to_box(priors, dist), "keypoints": kpt,
            "rel_size": relative_size(out["size"])}


def distance_to_box(points: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Points ``(*, 2)`` and distances ``(*, 4)`` (left, top, right, bottom; pixels) -> boxes ``(*, 4)``."""
    return torch.cat([points - dist[..., :2], points + dist[..., 2:]], -1)


def box_to_distance(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`distance_to_box`: ``(*, 2)``, ``(*, 4)`` -> ``(*, 4)`` pixels."""
    return torch.cat([points - boxes[..., :2], boxes[..., 2:] - points], -1)


def quality_focal_loss(logits: torch.Tensor, labels: torch.Tensor, quality: torch.Tensor,
                       beta: float = 2.0) -> torch.Tensor:
    """QFL (GFL eq. 5): ``logits (P, C)``, ``labels (P,)`` 0-based class or −1 for negatives,
    ``quality (P,)`` soft target of the labelled channel -> per-prior loss ``(P,)`` summed over classes."""
    sig = logits.sigmoid()
    target = torch.zeros_like(logits)
    pos = labels >= 0
    target[pos, labels[pos]] = quality[pos].to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * (sig - target).abs().pow(beta)
    return loss.sum(-1)


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DFL (GFL eq. 6): ``logits (N, n+1)``, continuous ``target (N,)`` in [0, n) -> ``(N,)``."""
    left = target.long()
    right = left + 1
    wl = right.to(target.dtype) - target
    wr = target - left.to(target.dtype)
    return F.cross_entropy(logits, left, reduction="none") * wl + F.cross_entropy(logits, right, reduction="none") * wr


@dataclass(frozen=True)
class LossWeights:
    """Loss weights (QFL 1, DFL 0.25, GIoU 2 from NanoDet; keypoints and size ours)."""

    qfl: float = 1.0
    dfl: float = 0.25
    giou: float = 2.0
    keypoints: float = 1.0
    size: float = 1.0


class GFLHead(nn.Module):
    """Unshared per-level heads (see module docstring).

    Args:
        num_classes: ``C``.
        in_channels: neck channels (same for all levels).
        strides: one stride per level.
        feat_channels: tower width.
        stacked_convs: depthwise-separable convs per tower (2).
        kernel_size: their kernel (3 in NanoDet, 5 in NanoDet-Plus).
        reg_max: ``n`` of the side distributions (7).
        num_keypoints: ``K`` (9).

    ``forward(feats)`` takes the list of ``(B, in_channels, H_l, W_l)`` maps and returns a dict of
    flattened outputs over all priors ``P = Σ H_l·W_l``: ``cls (B, P, C)``, ``reg (B, P, 4(n+1))``,
    ``kpt (B, P, 2K)`` (stride units), ``size (B, P, 3)`` (logits).
    """

    def __init__(self, num_classes: int, in_channels: int, strides: Sequence[int], feat_channels: int = 96,
                 stacked_convs: int = 2, kernel_size: int = 3, reg_max: int = 7,
                 num_keypoints: int = NUM_KEYPOINTS, loss_weights: LossWeights | None = None) -> None:
        super().__init__()
        self.num_classes, self.reg_max, self.num_keypoints = num_classes, reg_max, num_keypoints
        self.strides = tuple(int(s) for s in strides)
        self.weights = loss_weights or LossWeights()
        self.num_out = num_classes + 4 * (reg_max + 1) + 2 * num_keypoints + 3
        self.towers = nn.ModuleList()
        self.preds = nn.ModuleList()
        for _ in self.strides:
            layers = [DepthwiseSeparableConv(in_channels if i == 0 else feat_channels, feat_channels, kernel_size)
                      for i in range(stacked_convs)]
            self.towers.append(nn.Sequential(*layers))
            self.preds.append(nn.Conv2d(feat_channels if stacked_convs else in_channels, self.num_out, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """NanoDet init: normal(0.01) convs, class bias −4.595 (prior probability 0.01)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for p in self.preds:
            nn.init.constant_(p.bias[: self.num_classes], -4.595)

    def forward(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(feats) != len(self.strides):
            raise ValueError(f"GFLHead: expected {len(self.strides)} levels, got {len(feats)}")
        outs = []
        for f, tower, pred in zip(feats, self.towers, self.preds):
            o = pred(tower(f))
            outs.append(o.flatten(2).transpose(1, 2))  # (B, H·W, num_out)
        o = torch.cat(outs, 1)
        c, r, k = self.num_classes, 4 * (self.reg_max + 1), 2 * self.num_keypoints
        return {"cls": o[..., :c], "reg": o[..., c:c + r], "kpt": o[..., c + r:c + r + k], "size": o[..., c + r + k:]}

    # -- decoding -----------------------------------------------------------------------------------------
    def priors_for(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """:func:`make_priors` for the given feature maps."""
        return make_priors([tuple(f.shape[-2:]) for f in feats], self.strides, feats[0].device)

    def decode(self, out: dict[str, torch.Tensor], priors: torch.Tensor, strides: torch.Tensor
               ) -> dict[str, torch.Tensor]:
        """Per-prior predictions in input pixels: ``scores (B, P, C)``, ``boxes (B, P, 4)``,
        ``keypoints (B, P, K, 2)``, ``rel_size (B, P, 3)`` (unit diagonal)."""
        return decode_outputs(out, priors, strides, self.reg_max, self.num_keypoints)

    # -- losses -------------------------------------------------------------------------------------------
    def loss(self, out: dict[str, torch.Tensor], priors: torch.Tensor, strides: torch.Tensor,
             num_level_priors: Sequence[int], targets: dict[str, torch.Tensor],
             assigner: ATSSAssigner | DynamicSoftLabelAssigner) -> dict[str, torch.Tensor]:
        """Weighted loss terms for a batch.

        Args:
            out: :meth:`forward` outputs.
            priors, strides, num_level_priors: :meth:`priors_for`.
            targets: ``gt_boxes (B, G, 4)``, ``gt_labels (B, G)`` 0-based, ``gt_keypoints (B, G, K, 2)``,
                ``gt_rel_size (B, G, 3)``, ``gt_valid (B, G)`` bool (padding False); input pixels.
            assigner: label assignment.

        Returns:
            ``{"qfl", "dfl", "giou", "keypoints", "size"}`` weighted scalars.
        """
        B = out["cls"].shape[0]
        n = self.reg_max
        dec = self.decode({k: v.detach() for k, v in out.items()}, priors, strides)
        labels_all, gt_all = [], []
        for b in range(B):
            valid = targets["gt_valid"][b]
            boxes, labels = targets["gt_boxes"][b][valid], targets["gt_labels"][b][valid]
            res = assigner.assign(priors=priors, strides=strides, num_level_priors=num_level_priors,
                                  gt_boxes=boxes, gt_labels=labels, pred_scores=dec["scores"][b],
                                  pred_boxes=dec["boxes"][b])
            gi = res.gt_index
            # map to the padded GT index of this image
            valid_idx = torch.nonzero(valid).squeeze(1)
            gt_all.append(torch.where(gi >= 0, valid_idx[gi.clamp(min=0)] if len(valid_idx) else gi, gi))
            labels_all.append(torch.where(gi >= 0, labels[gi.clamp(min=0)] if len(labels) else gi, gi))
        gt_index = torch.stack(gt_all)  # (B, P)
        labels = torch.stack(labels_all)
        pos = gt_index >= 0
        bi, pi = torch.nonzero(pos, as_tuple=True)
        gi = gt_index[bi, pi]
        num_pos = max(int(pos.sum()), 1)
        cls = out["cls"].reshape(-1, self.num_classes)
        quality = torch.zeros(pos.shape, dtype=cls.dtype, device=cls.device)
        zero = cls.sum() * 0.0
        if len(bi) == 0:
            qfl = quality_focal_loss(cls, labels.reshape(-1), quality.reshape(-1)).sum() / num_pos
            return {"qfl": self.weights.qfl * qfl, "dfl": zero, "giou": zero, "keypoints": zero, "size": zero}
        p_xy, p_s = priors[pi], strides[pi]
        gt_box = targets["gt_boxes"][bi, gi]
        reg = out["reg"][bi, pi]
        dist = distribution_to_distance(reg, n) * p_s[:, None]
        pred_box = distance_to_box(p_xy, dist)
        quality[bi, pi] = box_iou(pred_box.detach(), gt_box, aligned=True).clamp(min=0).to(cls.dtype)
        qfl = quality_focal_loss(cls, labels.reshape(-1), quality.reshape(-1)).sum() / num_pos
        w = out["cls"][bi, pi].detach().sigmoid().max(-1).values
        wsum = w.sum().clamp(min=1e-6)
        giou = (giou_loss(pred_box, gt_box) * w).sum() / wsum
        tdist = (box_to_distance(p_xy, gt_box) / p_s[:, None]).clamp(min=0, max=n - 0.1)
        dfl = distribution_focal_loss(reg.reshape(-1, n + 1), tdist.reshape(-1)).reshape(-1, 4).sum(-1)
        dfl = (dfl * w).sum() / (4 * wsum)
        K = self.num_keypoints
        kpt_t = (targets["gt_keypoints"][bi, gi] - p_xy[:, None]) / p_s[:, None, None]
        kpt_p = out["kpt"][bi, pi].reshape(-1, K, 2)
        kpt = ((kpt_p - kpt_t).abs().sum((-1, -2)) / K * w).sum() / wsum
        size = ((relative_size(out["size"][bi, pi]) - targets["gt_rel_size"][bi, gi]).abs().sum(-1) * w).sum() / wsum
        wt = self.weights
        return {"qfl": wt.qfl * qfl, "dfl": wt.dfl * dfl, "giou": wt.giou * giou, "keypoints": wt.keypoints * kpt,
                "size": wt.size * size}


def relative_size(logits: torch.Tensor) -> torch.Tensor:
    """``(*, 3)`` size logits -> extents with unit diagonal ``softplus(x) / ‖softplus(x)‖``."""
    sp = F.softplus(logits) + 1e-6
    return sp / sp.norm(dim=-1, keepdim=True)
