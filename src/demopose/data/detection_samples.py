"""Frame-level samples for the monocular detector: the letterboxed image and per-object 2D targets.

For every annotated instance of a frame (notes/monocular.md §3.1-§3.3):

* ``box``: the tight box of its instance mask, as continuous edges in pixel-centre coordinates
  (``x1 = min column − 0.5``, ``x2 = max column + 0.5``);
* ``keypoints (9, 2)``: the 8 cuboid corners (:func:`demopose.geometry.box_corners_in_camera`, NOCS corner
  order) and the box centre, projected with the frame intrinsics (:func:`project_points`). The rotation of
  a y-symmetric instance (bottle, bowl, can, handle-less mug) is first made canonical
  (:func:`canonicalize_y_symmetric`), so that its corner order is a function of the image;
* ``rel_size (3,)``: the extents over the box diagonal (the NOCS scales);
* ``label``: 0-based class index (``class_id − 1``).

The image is mapped into the ``W_in × H_in`` network input by one affine warp: the letterbox (uniform
resize to fit, placed at the top-left, zero padding) followed, in training, by the augmentation (scale
about the input centre, translation, horizontal flip) — NanoDet's ranges (§1.7) — and photometric noise:
colour jitter (brightness, contrast, saturation), per-channel gains (white balance), Gaussian blur, sensor
noise and JPEG compression, the image degradations of real cameras that rendered frames lack.

Horizontal flip: mirroring the image mirrors the object, so its object frame must be reflected too to
stay right-handed: ``R' = F R M`` with ``F = diag(−1, 1, 1)`` (camera x) and ``M`` the reflection of an
object axis under which the category's shape is (near) mirror-symmetric — object x by default, object z
for categories flagged ``mirror_xy`` (laptop, mug: handle along x). Corner ``k`` of the flipped object is
the mirror image of corner :func:`flip_permutation` ``[k]`` of the original one (the corner with that
axis' sign negated); the centre keypoint stays. The permutation is an involution.

Samples are dicts of NumPy arrays; :func:`collate_detection` pads the objects to the batch maximum:

=================  ===================  ====================================================
key                shape / dtype        meaning
=================  ===================  ====================================================
image              (3, H_in, W_in) f32  RGB normalised with NanoDet's mean/std
gt_boxes           (G, 4) f32           x1 y1 x2 y2, input pixels
gt_labels          (G,) i64             0-based class index
gt_keypoints       (G, 9, 2) f32        8 corners (NOCS order) + centre, input pixels
gt_rel_size        (G, 3) f32           extents / diagonal
gt_valid           (G,) bool            False for padding (collated batches only)
matrix             (2, 3) f64           original pixel -> input pixel affine map
=================  ===================  ====================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from demopose.data.frame import Frame
from demopose.geometry.box3d import BOX_CORNER_SIGNS, box_corners_in_camera
from demopose.geometry.camera import project_points
from demopose.geometry.symmetry import canonicalize_y_symmetric

__all__ = [
    "IMAGE_MEAN",
    "IMAGE_STD",
    "DetectionAugment",
    "letterbox_pixels",
    "FrameDetectionDataset",
    "FrameTargets",
    "collate_detection",
    "flip_permutation",
    "frame_targets",
    "letterbox_image",
    "letterbox_matrix",
    "make_detection_sample",
    "normalize_image",
]

IMAGE_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
"""RGB mean (NanoDet's BGR mean 103.53, 116.28, 123.675 reordered)."""
IMAGE_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
"""RGB std (NanoDet)."""


def flip_permutation(axis: int = 0) -> np.ndarray:
    """``(9,)`` keypoint permutation of a mirror that reflects object ``axis`` (0 = x, 2 = z): new keypoint
    ``k`` is old keypoint ``perm[k]`` — the corner whose ``axis`` sign is negated; the centre (8) stays."""
    if axis not in (0, 1, 2):
        raise ValueError(f"flip_permutation: axis must be 0, 1 or 2, got {axis}")
    signs = [tuple(s) for s in BOX_CORNER_SIGNS]
    perm = []
    for s in signs:
        m = list(s)
        m[axis] = -m[axis]
        perm.append(signs.index(tuple(m)))
    return np.array([*perm, 8], dtype=np.int64)


@dataclass
class DetectionAugment:
    """Training augmentation (NanoDet ranges, notes §1.7). Set probabilities to 0 to disable."""

    p_flip: float = 0.5
    scale: tuple[float, float] = (0.6, 1.4)
    translate: float = 0.2
    brightness: float = 0.2
    contrast: tuple[float, float] = (0.6, 1.4)
    saturation: tuple[float, float] = (0.5, 1.2)
    white_balance: float = 0.1
    """Per-channel gain drawn from ``1 ± white_balance`` (colour temperature / white balance)."""
    p_blur: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    """Gaussian blur sigma in input pixels (defocus, motion), applied with probability ``p_blur``."""
    p_noise: float = 0.3
    noise_std: tuple[float, float] = (2.0, 10.0)
    """Additive Gaussian pixel noise, standard deviation in 0-255 grey levels, with probability ``p_noise``."""
    p_jpeg: float = 0.3
    jpeg_quality: tuple[int, int] = (30, 95)
    """JPEG re-encoding at a quality drawn from this range, with probability ``p_jpeg``."""
    min_box_side: float = 4.0


@dataclass
class FrameTargets:
    """Detection targets of one frame in original-image pixels (module docstring).

    Attributes: ``boxes (G, 4)``, ``labels (G,)``, ``keypoints (G, 9, 2)``, ``rel_size (G, 3)``,
    ``flip_axis (G,)`` (object axis reflected by a horizontal flip), ``index (G,)`` instance index in the frame.
    """

    boxes: np.ndarray
    labels: np.ndarray
    keypoints: np.ndarray
    rel_size: np.ndarray
    flip_axis: np.ndarray
    index: np.ndarray


def frame_targets(frame: Frame) -> FrameTargets:
    """Targets of every annotated instance with a non-empty mask and its box centre in front of the camera."""
    boxes, labels, kps, rel, axes, idx = [], [], [], [], [], []
    if frame.poses is not None:
        K = frame.K
        for j, inst in enumerate(frame.instance_ids):
            ys, xs = np.nonzero(frame.instance_map == inst)
            p = frame.poses[j]
            if len(xs) == 0 or p.t[2] <= 0:
                continue
            cid = int(frame.class_ids[j])
            hv = bool(frame.handle_visible[j]) if frame.handle_visible is not None else True
            R = canonicalize_y_symmetric(p.R) if frame.categories.is_y_symmetric(cid, hv) else p.R
            pts = np.concatenate([box_corners_in_camera(R, p.t, p.size), p.t[None]], 0)
            kps.append(project_points(pts, K))
            boxes.append([xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5])
            labels.append(cid - 1)
            rel.append(p.size / np.linalg.norm(p.size))
            axes.append(2 if getattr(frame.categories[cid], "mirror_xy", False) else 0)
            idx.append(j)
    g = len(boxes)
    return FrameTargets(np.asarray(boxes, np.float64).reshape(g, 4), np.asarray(labels, np.int64),
                        np.asarray(kps, np.float64).reshape(g, 9, 2), np.asarray(rel, np.float64).reshape(g, 3),
                        np.asarray(axes, np.int64), np.asarray(idx, np.int64))


def letterbox_matrix(width: int, height: int, in_width: int, in_height: int) -> np.ndarray:
    """``(3, 3)`` map from original to input pixels (pixel-centre convention): uniform scale
    ``r = min(W_in/W, H_in/H)``, image at the top-left: ``x' = (x + 0.5)·r − 0.5``."""
    r = min(in_width / width, in_height / height)
    return np.array([[r, 0, 0.5 * r - 0.5], [0, r, 0.5 * r - 0.5], [0, 0, 1.0]])


def _augment_matrix(rng: np.random.Generator, in_w: int, in_h: int, cfg: DetectionAugment) -> tuple[np.ndarray, bool]:
    s = rng.uniform(*cfg.scale)
    tx, ty = rng.uniform(-cfg.translate, cfg.translate, 2) * (in_w, in_h)
    cx, cy = (in_w - 1) / 2, (in_h - 1) / 2
    A = np.array([[s, 0, cx - s * cx + tx], [0, s, cy - s * cy + ty], [0, 0, 1.0]])
    flip = bool(rng.random() < cfg.p_flip)
    if flip:
        A = np.array([[-1.0, 0, in_w - 1], [0, 1, 0], [0, 0, 1]]) @ A
    return A, flip


def _apply(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ M[:2, :2].T + M[:2, 2]


def _color_jitter(img: np.ndarray, rng: np.random.Generator, cfg: DetectionAugment) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> float32 in [0, 255]: brightness, contrast, saturation, white balance, blur,
    noise and JPEG (:class:`DetectionAugment`). The random draws happen in a fixed order, so a sample is a
    function of its seed."""
    x = img.astype(np.float32)
    x = x + rng.uniform(-cfg.brightness, cfg.brightness) * 255.0
    mean = x.mean()
    x = (x - mean) * rng.uniform(*cfg.contrast) + mean
    grey = x.mean(-1, keepdims=True)
    x = (x - grey) * rng.uniform(*cfg.saturation) + grey
    x = x * rng.uniform(1.0 - cfg.white_balance, 1.0 + cfg.white_balance, 3).astype(np.float32)
    blur, sigma = rng.random() < cfg.p_blur, rng.uniform(*cfg.blur_sigma)
    noisy, std = rng.random() < cfg.p_noise, rng.uniform(*cfg.noise_std)
    jpeg, quality = rng.random() < cfg.p_jpeg, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    if blur:
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=float(sigma))
    if noisy:
        x = x + rng.normal(0.0, std, x.shape).astype(np.float32)
    x = np.clip(x, 0, 255)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", x.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            x = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32)
    return x


def normalize_image(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB in [0, 255] -> ``(3, H, W)`` float32 normalised network input."""
    return ((np.asarray(img, np.float32) - IMAGE_MEAN) / IMAGE_STD).transpose(2, 0, 1).copy()


def letterbox_pixels(rgb: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> ``(H_in, W_in, 3)`` uint8, letterboxed to ``input_size = (W_in, H_in)``
    (:func:`letterbox_matrix`, black border), not yet normalised."""
    in_w, in_h = int(input_size[0]), int(input_size[1])
    M = letterbox_matrix(rgb.shape[1], rgb.shape[0], in_w, in_h)
    return cv2.warpAffine(rgb, M[:2], (in_w, in_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def letterbox_image(rgb: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> the ``(3, H_in, W_in)`` float32 letterboxed, normalised network input of
    ``input_size = (W_in, H_in)`` (:func:`letterbox_pixels`, then :func:`normalize_image`)."""
    return normalize_image(letterbox_pixels(rgb, input_size))


def make_detection_sample(frame: Frame, input_size: tuple[int, int], rng: np.random.Generator | None = None,
                          augment: DetectionAugment | None = None, targets: FrameTargets | None = None
                          ) -> dict[str, Any]:
    """Build one sample (module docstring). ``input_size = (W_in, H_in)``; ``augment`` needs ``rng``."""
    in_w, in_h = int(input_size[0]), int(input_size[1])
    M = letterbox_matrix(frame.width, frame.height, in_w, in_h)
    flip = False
    if augment is not None:
        if rng is None:
            raise ValueError("make_detection_sample: augment needs an rng")
        A, flip = _augment_matrix(rng, in_w, in_h, augment)
        M = A @ M
    img = cv2.warpAffine(frame.rgb, M[:2], (in_w, in_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(0, 0, 0))
    if augment is not None:
        img = _color_jitter(img, rng, augment)
    t = targets if targets is not None else frame_targets(frame)
    kp = _apply(M, t.keypoints.reshape(-1, 2)).reshape(-1, 9, 2)
    corners = np.stack([t.boxes[:, [0, 1]], t.boxes[:, [2, 1]], t.boxes[:, [0, 3]], t.boxes[:, [2, 3]]], 1)
    c = _apply(M, corners.reshape(-1, 2)).reshape(-1, 4, 2)
    boxes = np.concatenate([c.min(1), c.max(1)], -1) if len(c) else np.zeros((0, 4))
    if flip:
        for g in range(len(kp)):
            kp[g] = kp[g][flip_permutation(int(t.flip_axis[g]))]
    full_w = boxes[:, 2] - boxes[:, 0]
    full_h = boxes[:, 3] - boxes[:, 1]
    boxes = np.clip(boxes, -0.5, [in_w - 0.5, in_h - 0.5, in_w - 0.5, in_h - 0.5])
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    min_side = augment.min_box_side if augment is not None else 1.0
    keep = (w >= min_side) & (h >= min_side) & (w * h >= 0.25 * full_w * full_h)
    return {
        "image": normalize_image(img),
        "gt_boxes": boxes[keep].astype(np.float32),
        "gt_labels": t.labels[keep],
        "gt_keypoints": kp[keep].astype(np.float32),
        "gt_rel_size": t.rel_size[keep].astype(np.float32),
        "matrix": M[:2].copy(),
    }


def collate_detection(samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack images and pad per-object targets to the largest ``G`` of the batch (``gt_valid`` marks real
    objects)."""
    if not samples:
        raise ValueError("collate_detection: empty batch")
    B = len(samples)
    G = max(1, max(len(s["gt_labels"]) for s in samples))
    out = {
        "image": torch.from_numpy(np.stack([s["image"] for s in samples])),
        "gt_boxes": torch.zeros(B, G, 4),
        "gt_labels": torch.zeros(B, G, dtype=torch.long),
        "gt_keypoints": torch.zeros(B, G, 9, 2),
        "gt_rel_size": torch.zeros(B, G, 3),
        "gt_valid": torch.zeros(B, G, dtype=torch.bool),
        "matrix": torch.from_numpy(np.stack([s["matrix"] for s in samples])),
    }
    for b, s in enumerate(samples):
        g = len(s["gt_labels"])
        out["gt_boxes"][b, :g] = torch.from_numpy(s["gt_boxes"])
        out["gt_labels"][b, :g] = torch.from_numpy(s["gt_labels"])
        out["gt_keypoints"][b, :g] = torch.from_numpy(s["gt_keypoints"])
        out["gt_rel_size"][b, :g] = torch.from_numpy(s["gt_rel_size"])
        out["gt_valid"][b, :g] = True
    return out


class FrameDetectionDataset(torch.utils.data.Dataset):
    """One item per frame (frames without annotated objects are all-negative samples); keys are ``(index, seed)`` pairs
    (:class:`~demopose.engine.sampler.ResumableSampler`) or plain indices (seed = index).

    Args:
        frames: a frame dataset.
        input_size: ``(W_in, H_in)``, multiples of 32.
        train: apply :class:`DetectionAugment`.
        augment: augmentation settings (default NanoDet's).
        cache: keep each frame's RGB image and targets in memory after its first use (``data.cache_instances``):
            decoding a frame costs more than augmenting it, and the samples are identical either way. About
            0.9 MB per 640×480 frame, per loader process.
    """

    collate_fn = staticmethod(collate_detection)

    def __init__(self, frames: Sequence[Frame], input_size: tuple[int, int] = (320, 320), train: bool = True,
                 augment: DetectionAugment | None = None, cache: bool = False) -> None:
        if input_size[0] % 32 or input_size[1] % 32:
            raise ValueError(f"input_size: expected multiples of 32, got {tuple(input_size)}")
        self.frames, self.input_size, self.train = frames, tuple(input_size), train
        self.augment = augment or DetectionAugment()
        if len(frames) == 0:
            raise ValueError("FrameDetectionDataset: the frame dataset is empty")
        self.index = list(range(len(frames)))  # no pre-scan: loading every frame up front is slow
        self.cache: dict[int, tuple[_ImageRecord, FrameTargets]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.index)

    def _frame(self, j: int) -> tuple[Frame | _ImageRecord, FrameTargets]:
        if self.cache is not None and j in self.cache:
            return self.cache[j]
        frame = self.frames[j]
        targets = frame_targets(frame)
        if self.cache is not None:
            self.cache[j] = (_ImageRecord(frame.rgb, frame.width, frame.height), targets)
        return frame, targets

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        i, seed = (key, key) if isinstance(key, (int, np.integer)) else key
        rng = np.random.default_rng(seed)
        frame, targets = self._frame(self.index[int(i)])
        return make_detection_sample(frame, self.input_size, rng, self.augment if self.train else None, targets)


@dataclass(frozen=True)
class _ImageRecord:
    """What :func:`make_detection_sample` reads of a frame besides its targets: ``rgb (H, W, 3)`` uint8."""

    rgb: np.ndarray
    width: int
    height: int
