"""Non-maximum suppression in pure torch (no torchvision): single-class and class-aware.

Greedy NMS: visit boxes by decreasing score; keep a box unless its IoU with an already kept box is
*greater than* ``iou_threshold``. Class-aware NMS shifts every class into its own coordinate range
(offset ``class_id · (max coordinate + 1)``) so that boxes of different classes never overlap, as
NanoDet / torchvision ``batched_nms`` do.
"""

from __future__ import annotations

import numpy as np
import torch

from demopose._checks import check_shape
from demopose.layers.box_ops import box_iou

__all__ = ["batched_nms", "multiclass_nms", "nms"]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices ``(K,)`` int64 of the boxes ``(N, 4)`` kept by greedy NMS, by decreasing score."""
    check_shape(boxes, "N 4", "boxes")
    dims = {"N": boxes.shape[0]}
    check_shape(scores, "N", "scores", dims)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    iou = box_iou(boxes[order], boxes[order])
    over = (iou > iou_threshold).cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):  # O(N) steps over the precomputed (N, N) overlap matrix
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= over[i]
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, class_ids: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """Class-aware NMS: boxes of different ``class_ids (N,)`` never suppress each other.

    Returns kept indices ``(K,)`` sorted by decreasing score.
    """
    check_shape(boxes, "N 4", "boxes")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offset = class_ids.to(boxes.dtype) * (boxes.max() - boxes.min() + 1)
    shifted = boxes - boxes.min() + offset[:, None]
    # Shifted boxes of different classes never overlap, so greedy NMS over all of them keeps exactly what it
    # keeps class by class: the overlap matrices are per class (sum of n_c^2 instead of N^2 pairs; the same
    # IoU arithmetic per pair), the kept boxes merged back in the global visiting order.
    order = torch.argsort(scores, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    kept = []
    for c in torch.unique(class_ids):
        members = torch.nonzero(class_ids == c, as_tuple=True)[0]
        kept.append(members[nms(shifted[members], scores[members], iou_threshold)])
    kept = torch.cat(kept)
    return kept[torch.argsort(rank[kept])]


def multiclass_nms(boxes: torch.Tensor, scores: torch.Tensor, score_threshold: float = 0.05,
                   iou_threshold: float = 0.6, max_num: int = 100,
                   nms_pre: int = 1000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NanoDet post-processing for one image: every (prior, class) pair above ``score_threshold`` is a
    candidate (the ``nms_pre`` best of them), class-aware NMS, at most ``max_num`` kept.

    Args:
        boxes: ``(P, 4)`` decoded boxes of the priors.
        scores: ``(P, C)`` per-class scores in [0, 1].

    Returns:
        ``prior_index (K,)``, ``class_index (K,)`` (0-based), ``score (K,)``, by decreasing score.
    """
    check_shape(boxes, "P 4", "boxes")
    check_shape(scores, "P C", "scores", {"P": boxes.shape[0]})
    prior, cls = torch.nonzero(scores > score_threshold, as_tuple=True)
    s = scores[prior, cls]
    if len(s) > nms_pre:
        top = torch.topk(s, nms_pre).indices
        prior, cls, s = prior[top], cls[top], s[top]
    keep = batched_nms(boxes[prior], s, cls, iou_threshold)[:max_num]
    return prior[keep], cls[keep], s[keep]
