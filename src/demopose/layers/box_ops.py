"""Axis-aligned 2D box overlap in torch: area, IoU and generalised IoU (pairwise and aligned).

Convention: boxes are ``(x1, y1, x2, y2)`` in pixels with ``x2 >= x1`` and ``y2 >= y1``; a box's area is
``(x2 - x1) · (y2 - y1)``. GIoU (Rezatofighi et al., CVPR 2019): ``IoU − |C \\ (A ∪ B)| / |C|`` with
``C`` the smallest box enclosing A and B; it lies in (−1, 1].
"""

from __future__ import annotations

import torch

from demopose._checks import check_shape

__all__ = ["box_area", "box_iou", "generalized_box_iou", "giou_loss"]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(*,)`` of boxes ``(*, 4)`` (negative extents count as 0)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _inter_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, box_area(a) + box_area(b) - inter


def box_iou(a: torch.Tensor, b: torch.Tensor, aligned: bool = False, eps: float = 1e-9) -> torch.Tensor:
    """IoU of ``a (N, 4)`` and ``b (M, 4)``: ``(N, M)``; with ``aligned``, ``a`` and ``b`` are ``(*, 4)``
    of one shape and the result is ``(*,)``."""
    check_shape(a, "* 4", "a")
    check_shape(b, "* 4", "b")
    if not aligned:
        a, b = a[:, None, :], b[None, :, :]
    inter, union = _inter_union(a, b)
    return inter / union.clamp(min=eps)


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor, aligned: bool = False, eps: float = 1e-9) -> torch.Tensor:
    """GIoU of ``a (N, 4)`` and ``b (M, 4)``: ``(N, M)``; ``aligned``: elementwise over ``(*, 4)``."""
    check_shape(a, "* 4", "a")
    check_shape(b, "* 4", "b")
    if not aligned:
        a, b = a[:, None, :], b[None, :, :]
    inter, union = _inter_union(a, b)
    iou = inter / union.clamp(min=eps)
    lt = torch.minimum(a[..., :2], b[..., :2])
    rb = torch.maximum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    enclose = (wh[..., 0] * wh[..., 1]).clamp(min=eps)
    return iou - (enclose - union) / enclose


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 − GIoU`` of aligned boxes ``(*, 4)`` -> ``(*,)`` (GFL / NanoDet box loss)."""
    return 1.0 - generalized_box_iou(pred, target, aligned=True)
