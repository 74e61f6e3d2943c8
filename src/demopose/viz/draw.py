"""Drawing: projected 3D boxes, object axes, labels, mask overlays and contact sheets.

Every function takes an ``(H, W, 3)`` uint8 **RGB** image and returns a new image (the input is not
modified). Colours are RGB tuples. Drawing uses OpenCV with anti-aliased lines.

Convention:
    Boxes are drawn from the 8 corners in NOCS order (:data:`demopose.geometry.BOX_EDGES`); the top
    face (+y, the object's up direction) is drawn thicker. Object axes: x red, y green, z blue.
    Ground truth is drawn with dashed lines, predictions with solid lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from demopose._checks import check_shape
from demopose.categories import CategoryTable
from demopose.geometry.box3d import BOX_EDGES, box_corners_in_camera
from demopose.geometry.camera import project_points
from demopose.geometry.pose import PoseSet

__all__ = [
    "PALETTE",
    "class_color",
    "contact_sheet",
    "draw_axes",
    "draw_box",
    "draw_frame",
    "draw_label",
    "draw_pose",
    "draw_pose_set",
    "draw_predictions_and_gt",
    "overlay_masks",
    "pose_overlay",
]

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
)
"""Per-class RGB colours; class id ``c`` (1-based) uses ``PALETTE[(c - 1) % len(PALETTE)]``."""

GT_COLOR = (255, 255, 255)
_TOP_EDGES = {(0, 1), (0, 2), (1, 3), (2, 3)}


def class_color(class_id: int) -> tuple[int, int, int]:
    """RGB colour of a 1-based class id (0 / unknown -> grey)."""
    if class_id <= 0:
        return (160, 160, 160)
    return PALETTE[(int(class_id) - 1) % len(PALETTE)]


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    check_shape(image, "H W 3", "image")
    if image.dtype != np.uint8:
        raise ValueError(f"image: expected uint8 RGB, got {image.dtype}")
    return np.ascontiguousarray(image).copy()


def _line(img: np.ndarray, p: np.ndarray, q: np.ndarray, color, thickness: int, dashed: bool) -> None:
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        return
    big = 1e5  # keep far-away projections inside OpenCV's integer range
    p = np.clip(p, -big, big)
    q = np.clip(q, -big, big)
    if not dashed:
        cv2.line(img, (round(p[0]), round(p[1])), (round(q[0]), round(q[1])), color, thickness, cv2.LINE_AA)
        return
    length = float(np.linalg.norm(q - p))
    n = max(int(length / 8.0), 1)
    for k in range(0, n, 2):
        a = p + (q - p) * (k / n)
        b = p + (q - p) * (min(k + 1, n) / n)
        cv2.line(img, (round(a[0]), round(a[1])), (round(b[0]), round(b[1])), color, thickness, cv2.LINE_AA)


def draw_box(image: np.ndarray, corners_2d: np.ndarray, color: tuple[int, int, int] = (0, 255, 0),
             thickness: int = 2, dashed: bool = False) -> np.ndarray:
    """Draw a projected box from its 8 corners ``(8, 2)`` pixels (NOCS corner order)."""
    img = _check_image(image)
    corners_2d = np.asarray(corners_2d, dtype=np.float64)
    check_shape(corners_2d, "8 2", "corners_2d")
    for i, j in BOX_EDGES:
        th = thickness + 1 if (i, j) in _TOP_EDGES else thickness
        _line(img, corners_2d[i], corners_2d[j], color, th, dashed)
    return img


def draw_axes(image: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, length: float = 0.1,
              thickness: int = 2) -> np.ndarray:
    """Draw the object axes (x red, y green, z blue) of length ``length`` metres at ``t``.

    Args:
        R: ``(3, 3)`` rotation; t: ``(3,)`` metres; K: ``(3, 3)`` intrinsics.
    """
    img = _check_image(image)
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(3)
    pts = np.concatenate([t[None], t[None] + length * R.T], axis=0)  # origin, x, y, z tips
    if np.any(pts[:, 2] <= 1e-6):
        return img
    uv = project_points(pts, np.asarray(K, dtype=np.float64))
    for k, col in zip((1, 2, 3), ((255, 0, 0), (0, 255, 0), (0, 0, 255))):
        _line(img, uv[0], uv[k], col, thickness, False)
    return img


def draw_label(image: np.ndarray, text: str, org: tuple[float, float],
               color: tuple[int, int, int] = (255, 255, 255), scale: float = 0.45) -> np.ndarray:
    """Write ``text`` with its top-left corner at pixel ``org`` on a filled background of ``color``."""
    img = _check_image(image)
    h, w = img.shape[:2]
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int(np.clip(org[0], 0, max(w - tw - 2, 0)))
    y = int(np.clip(org[1], 0, max(h - th - base - 2, 0)))
    cv2.rectangle(img, (x, y), (x + tw + 2, y + th + base + 2), color, -1)
    lum = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if lum > 128 else (255, 255, 255)
    cv2.putText(img, text, (x + 1, y + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 1, cv2.LINE_AA)
    return img


def overlay_masks(image: np.ndarray, masks: np.ndarray, colors: Sequence[tuple[int, int, int]] | None = None,
                  alpha: float = 0.4) -> np.ndarray:
    """Blend instance masks ``(N, H, W)`` bool onto the image, one colour per mask, with outlines."""
    img = _check_image(image)
    masks = np.asarray(masks).astype(bool)
    if masks.ndim == 2:
        masks = masks[None]
    check_shape(masks, "N H W", "masks")
    if masks.shape[1:] != img.shape[:2]:
        raise ValueError(f"masks: expected (N, {img.shape[0]}, {img.shape[1]}), got {masks.shape}")
    out = img.astype(np.float32)
    for k, m in enumerate(masks):
        col = np.array(colors[k] if colors is not None else PALETTE[k % len(PALETTE)], dtype=np.float32)
        out[m] = (1 - alpha) * out[m] + alpha * col
    out = out.round().clip(0, 255).astype(np.uint8)
    for k, m in enumerate(masks):
        col = tuple(int(c) for c in (colors[k] if colors is not None else PALETTE[k % len(PALETTE)]))
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, col, 1, cv2.LINE_AA)
    return out


def draw_pose(image: np.ndarray, R: np.ndarray, t: np.ndarray, size: np.ndarray, K: np.ndarray,
              color: tuple[int, int, int] = (0, 255, 0), label: str | None = None, axes: bool = True,
              dashed: bool = False, thickness: int = 2) -> np.ndarray:
    """Draw one posed box (and optionally its axes and a label above it).

    Args:
        R: ``(3, 3)``; t: ``(3,)`` metres; size: ``(3,)`` metric extents; K: ``(3, 3)``.
        label: text drawn above the box's top-most corner.
    """
    img = _check_image(image)
    corners = box_corners_in_camera(np.asarray(R, np.float64), np.asarray(t, np.float64),
                                    np.asarray(size, np.float64))
    if np.any(corners[:, 2] <= 1e-6):  # (partly) behind the camera: not drawable with a pinhole
        return img
    K = np.asarray(K, dtype=np.float64)
    uv = project_points(corners, K)
    img = draw_box(img, uv, color, thickness, dashed)
    if axes:
        img = draw_axes(img, R, t, K, length=0.5 * float(np.min(size)), thickness=thickness)
    if label:
        img = draw_label(img, label, (uv[:, 0].min(), uv[:, 1].min() - 18), color)
    return img


def _name(categories: CategoryTable | None, class_id: int) -> str:
    if categories is not None and class_id in categories:
        return categories[class_id].name
    return f"class {class_id}"


def draw_pose_set(image: np.ndarray, poses: PoseSet, K: np.ndarray, categories: CategoryTable | None = None,
                  dashed: bool = False, axes: bool = True, labels: bool = True, show_score: bool = True,
                  color: tuple[int, int, int] | None = None, thickness: int = 2) -> np.ndarray:
    """Draw every pose of a :class:`PoseSet` with per-class colours and ``name score`` labels.

    Args:
        color: one colour for all boxes instead of the per-class palette.
    """
    img = _check_image(image)
    for i in range(len(poses)):
        c = int(poses.class_ids[i])
        col = color or class_color(c)
        text = None
        if labels:
            text = _name(categories, c)
            if show_score:
                text += f" {poses.scores[i]:.2f}"
        img = draw_pose(img, poses.R[i], poses.t[i], poses.size[i], K, col, text, axes, dashed, thickness)
    return img


def draw_predictions_and_gt(image: np.ndarray, predictions: PoseSet, ground_truth: PoseSet | None,
                            K: np.ndarray, categories: CategoryTable | None = None,
                            min_score: float = 0.0, legend: bool = False) -> np.ndarray:
    """Ground truth as dashed white boxes (no axes), predictions as solid per-class boxes with axes
    and ``name score`` labels; predictions below ``min_score`` are skipped.

    Args:
        legend: write which is which in the bottom-left corner (when there is ground truth).
    """
    img = _check_image(image)
    has_gt = ground_truth is not None and len(ground_truth) > 0
    if has_gt:
        img = draw_pose_set(img, ground_truth, K, categories, dashed=True, axes=False, labels=False,
                            color=GT_COLOR, thickness=1)
    keep = predictions.scores >= min_score
    img = draw_pose_set(img, predictions.select(keep), K, categories)
    if legend and has_gt:
        img = draw_label(img, "solid: predicted   dashed white: ground truth", (4, img.shape[0]), (40, 40, 40))
    return img


def pose_overlay(image: np.ndarray, predictions: PoseSet, ground_truth: PoseSet | None, K: np.ndarray,
                 categories: CategoryTable | None = None, masks: np.ndarray | None = None) -> np.ndarray:
    """The overlay picture of ``demopose predict`` and ``demopose test --overlays``: the instance masks the
    network ran on (``(N, H, W)`` bool, tinted; optional), the ground truth dashed white and the predictions
    solid with axes and ``name score`` labels (:func:`draw_predictions_and_gt`), with a legend when there is
    ground truth.

    Args:
        image: ``(H, W, 3)`` uint8 RGB. K: ``(3, 3)`` intrinsics. ground_truth: None for frames without it.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    img = _check_image(image)
    if masks is not None and len(masks) and np.asarray(masks).any():
        img = overlay_masks(img, masks, alpha=0.25)
    return draw_predictions_and_gt(img, predictions, ground_truth, K, categories, legend=True)


def draw_frame(frame, masks: bool = True, axes: bool = True, labels: bool = True,
               predictions: PoseSet | None = None) -> np.ndarray:
    """Draw a :class:`~demopose.data.Frame`: instance masks, ground-truth boxes, axes and class names.

    With ``predictions``, the ground truth is drawn dashed white and the predictions solid (see
    :func:`draw_predictions_and_gt`).
    """
    img = _check_image(frame.rgb)
    if masks and len(frame):
        img = overlay_masks(img, frame.masks(), [class_color(int(c)) for c in frame.class_ids], alpha=0.3)
    gt = frame.ground_truth() if frame.poses is not None else None
    if predictions is not None:
        return draw_predictions_and_gt(img, predictions, gt, frame.K, frame.categories)
    if gt is not None:
        img = draw_pose_set(img, gt, frame.K, frame.categories, axes=axes, labels=labels, show_score=False)
    return img


def contact_sheet(images: Sequence[np.ndarray], captions: Sequence[str] | None = None, ncols: int | None = None,
                  tile_width: int = 480, background: tuple[int, int, int] = (32, 32, 32)) -> np.ndarray:
    """Tile RGB images into one sheet, each resized to ``tile_width`` wide with a caption bar below.

    Args:
        images: ``(H_i, W_i, 3)`` uint8 RGB images (sizes may differ).
        captions: one string per image (may be empty).
        ncols: columns (default ``ceil(sqrt(n))``).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    if len(images) == 0:
        raise ValueError("contact_sheet: no images given")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"captions: expected {len(images)} strings, got {len(captions)}")
    ncols = ncols or math.ceil(math.sqrt(len(images)))
    tiles = []
    for im in images:
        im = _check_image(im)
        h = max(round(im.shape[0] * tile_width / im.shape[1]), 1)
        tiles.append(cv2.resize(im, (tile_width, h), interpolation=cv2.INTER_AREA))
    cap_h = 22 if captions is not None else 0
    tile_h = max(t.shape[0] for t in tiles) + cap_h
    nrows = math.ceil(len(tiles) / ncols)
    gap = 4
    sheet = np.empty((nrows * tile_h + (nrows + 1) * gap, ncols * tile_width + (ncols + 1) * gap, 3), np.uint8)
    sheet[:] = background
    for k, t in enumerate(tiles):
        r, c = divmod(k, ncols)
        y, x = gap + r * (tile_h + gap), gap + c * (tile_width + gap)
        sheet[y:y + t.shape[0], x:x + tile_width] = t
        if captions is not None and captions[k]:
            cv2.putText(sheet, str(captions[k]), (x + 4, y + tile_h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (235, 235, 235), 1, cv2.LINE_AA)
    return sheet
