"""Label assignment of point priors to ground-truth boxes for the monocular detector.

* :class:`ATSSAssigner` — Adaptive Training Sample Selection (Zhang et al., CVPR 2020), as used by
  NanoDet v0.x (notes/monocular.md §1.6): per level the ``topk`` (9) priors nearest to the GT centre;
  the IoU of their grid cells (squares of side ``octave_base_scale · stride`` centred on the prior)
  with the GT; threshold = mean + std of those IoUs; positives are candidates above the threshold whose
  point lies inside the GT; a prior claimed by several GTs takes the one of highest cell IoU.
* :class:`DynamicSoftLabelAssigner` — NanoDet-Plus (``assigner/dsl_assigner.py``): candidates are priors
  inside a GT; cost = soft-label QFL-style classification cost + ``iou_factor`` · (−log IoU of the
  *predicted* box); each GT takes its ``k = max(1, ⌊Σ top-13 IoUs⌋)`` cheapest priors; conflicts go to
  the cheapest GT.

Both return an :class:`AssignResult`. Coordinates are input-image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from demopose.layers.box_ops import box_iou

__all__ = ["AssignResult", "ATSSAssigner", "DynamicSoftLabelAssigner", "build_assigner", "points_inside_boxes"]


@dataclass
class AssignResult:
    """Assignment of ``P`` priors to ``G`` GT boxes.

    Attributes:
        gt_index: ``(P,)`` int64, the GT matched to each prior, −1 for negatives.
    """

    gt_index: torch.Tensor

    @property
    def positive(self) -> torch.Tensor:
        """``(P,)`` bool."""
        return self.gt_index >= 0


def points_inside_boxes(points: torch.Tensor, boxes: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """``(P, G)`` bool: point ``(P, 2)`` strictly inside box ``(G, 4)`` (all four distances > ``eps``)."""
    lt = points[:, None, :] - boxes[None, :, :2]
    rb = boxes[None, :, 2:] - points[:, None, :]
    return torch.cat([lt, rb], -1).min(-1).values > eps


class ATSSAssigner:
    """ATSS (see module docstring). ``topk`` per level (9), cell side ``octave_base_scale · stride`` (5)."""

    def __init__(self, topk: int = 9, octave_base_scale: float = 5.0) -> None:
        self.topk = topk
        self.octave_base_scale = octave_base_scale

    @torch.no_grad()
    def assign(self, priors: torch.Tensor, strides: torch.Tensor, num_level_priors: Sequence[int],
               gt_boxes: torch.Tensor, gt_labels: torch.Tensor, **_) -> AssignResult:
        """``priors (P, 2)``, ``strides (P,)``, ``num_level_priors`` (priors per level, summing to P),
        ``gt_boxes (G, 4)``, ``gt_labels (G,)`` -> :class:`AssignResult`."""
        P, G = priors.shape[0], gt_boxes.shape[0]
        gt_index = torch.full((P,), -1, dtype=torch.long, device=priors.device)
        if G == 0 or P == 0:
            return AssignResult(gt_index)
        half = (self.octave_base_scale * strides / 2)[:, None]
        cells = torch.cat([priors - half, priors + half], -1)
        ious = box_iou(cells, gt_boxes)  # (P, G)
        gt_ctr = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
        dist = torch.cdist(priors, gt_ctr)  # (P, G)
        cand = []
        start = 0
        for n in num_level_priors:
            k = min(self.topk, n)
            cand.append(dist[start:start + n].topk(k, dim=0, largest=False).indices + start)
            start += n
        cand_idx = torch.cat(cand, 0)  # (L·k, G)
        cand_iou = ious.gather(0, cand_idx)
        std = cand_iou.std(0) if cand_iou.shape[0] > 1 else torch.zeros_like(cand_iou[0])
        thr = cand_iou.mean(0) + std
        is_pos = cand_iou >= thr[None]
        inside = points_inside_boxes(priors, gt_boxes)  # (P, G)
        is_pos &= inside.gather(0, cand_idx)
        gts = torch.arange(G, device=priors.device)[None].expand_as(cand_idx)
        overlap = torch.full((P, G), -1.0, dtype=ious.dtype, device=priors.device)
        overlap[cand_idx[is_pos], gts[is_pos]] = ious[cand_idx[is_pos], gts[is_pos]]
        best, arg = overlap.max(1)
        gt_index[best >= 0] = arg[best >= 0]
        return AssignResult(gt_index)


class DynamicSoftLabelAssigner:
    """NanoDet-Plus dynamic soft-label assignment (see module docstring); ``topk`` 13, ``iou_factor`` 3."""

    def __init__(self, topk: int = 13, iou_factor: float = 3.0) -> None:
        self.topk = topk
        self.iou_factor = iou_factor

    @torch.no_grad()
    def assign(self, priors: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
               pred_scores: torch.Tensor, pred_boxes: torch.Tensor, **_) -> AssignResult:
        """``priors (P, 2)``, ``gt_boxes (G, 4)``, ``gt_labels (G,)`` 0-based, ``pred_scores (P, C)``
        sigmoid scores, ``pred_boxes (P, 4)`` decoded predicted boxes -> :class:`AssignResult`."""
        P, G = priors.shape[0], gt_boxes.shape[0]
        gt_index = torch.full((P,), -1, dtype=torch.long, device=priors.device)
        if G == 0 or P == 0:
            return AssignResult(gt_index)
        inside = points_inside_boxes(priors, gt_boxes)  # (P, G)
        valid = inside.any(1)
        if not valid.any():
            return AssignResult(gt_index)
        vidx = torch.nonzero(valid).squeeze(1)
        ious = box_iou(pred_boxes[vidx].float(), gt_boxes.float())  # (V, G)
        iou_cost = -torch.log(ious + 1e-7)
        onehot = F.one_hot(gt_labels.long(), pred_scores.shape[1]).float()  # (G, C)
        soft = onehot[None] * ious[..., None]  # (V, G, C)
        s = pred_scores[vidx].float()[:, None, :].expand_as(soft).clamp(1e-6, 1 - 1e-6)
        cls_cost = (F.binary_cross_entropy(s, soft, reduction="none") * (soft - s).abs().pow(2)).sum(-1)
        cost = cls_cost + self.iou_factor * iou_cost + 1e8 * (~inside[vidx]).float()
        k = min(self.topk, len(vidx))
        dyn_k = ious.topk(k, dim=0).values.sum(0).int().clamp(min=1)  # (G,)
        match = torch.zeros_like(cost, dtype=torch.bool)
        for g in range(G):
            kk = min(int(dyn_k[g]), len(vidx))
            match[cost[:, g].topk(kk, largest=False).indices, g] = True
        multi = match.sum(1) > 1
        if multi.any():
            best = cost[multi].argmin(1)
            match[multi] = False
            match[multi, best] = True
        match &= inside[vidx]
        rows, cols = torch.nonzero(match, as_tuple=True)
        gt_index[vidx[rows]] = cols
        return AssignResult(gt_index)


def build_assigner(kind: str) -> ATSSAssigner | DynamicSoftLabelAssigner:
    """``atss`` (default) or ``dsl``."""
    if kind == "atss":
        return ATSSAssigner()
    if kind == "dsl":
        return DynamicSoftLabelAssigner()
    raise ValueError(f"assigner: expected 'atss' or 'dsl', got {kind!r}")
