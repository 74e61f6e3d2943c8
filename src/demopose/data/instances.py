"""Per-instance samples: from a frame and an instance mask to the point cloud a pose network eats.

GPV-Pose's input pipeline (Di et al., CVPR 2022; lolrudy/GPV_Pose ``datasets/load_data.py``,
``network/point_sample/pc_sample.py``; notes/depth_and_eval.md §1.1, §1.10), re-derived:

1. the instance mask (ground truth, a segmentation pkl, or any detector), optionally with GPV's mask
   boundary noise during training;
2. back-projection of the masked valid depth pixels, with depth-outlier removal;
3. ``n_points`` (1028) points sampled uniformly (with replacement when fewer), each keeping its pixel
   ``(u, v)`` in the original image — the fusion with RGB features samples feature maps there;
4. training augmentations in 3D (box scaling, rotation/translation jitter, box-cage for bowl/mug,
   object-centred point noise), applied to the points *and* the targets consistently;
5. targets: R, t, metric size and its residual to the category mean, symmetry flags.

Every sample is a dict of NumPy arrays; :func:`collate_instances` stacks them into tensors. Keys:

=================  ==============  ============================================================
key                shape / dtype   meaning
=================  ==============  ============================================================
points             (N, 3) f32      camera-frame points, metres
pixels             (N, 2) f32      their pixel coordinates (u = column, v = row)
class_ids          () i64          1-based category id (``(B,)`` once collated)
mean_size          (3,) f32        the category mean size, metres
y_symmetric        () bool         rotation about the object y axis is free (incl. mug handle rule)
mirror_xy          () bool         mirror-symmetric about the object xy plane
handle_visible     () bool         mug handle visibility (True when unknown / not a mug)
R, t, size         (3,3) (3,) (3,) ground truth, f32, metres (absent at inference)
size_residual      (3,) f32        size − mean_size
model_points       (M, 3) f32      mesh surface samples in the metric object frame (optional)
bbox               (4,) f32        the instance's 2D box x1 y1 x2 y2 (pixels)
rgb                (3, S, S) f32   square RGB crop in [0, 1] (only with ``rgb_size=S``)
rgb_pixels         (N, 2) f32      the points' (u, v) in the crop's pixels (only with ``rgb_size``)
instance_index     () i64          position in :class:`InstanceDataset` (stable per instance; caches)
image              (3, Hi, Wi) f32 letterboxed normalised frame (only with ``image_size``; DeMo-Pose)
image_pixels       (N, 2) f32      the points' (u, v) in that image (only with ``image_size``)
frame_index        () i64          the frame's index in the frame dataset (only with ``image_size``)
=================  ==============  ============================================================

With ``image`` in the samples, :func:`collate_instances` stores each frame once: ``image (F, 3, Hi, Wi)``
for the ``F`` distinct frames of the batch and ``image_index (B,)`` pointing into it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from demopose.data.frame import Frame
from demopose.geometry.camera import backproject_pixels
from demopose.geometry.rotation import rotation_about_axis

__all__ = [
    "AugmentConfig",
    "InstanceCrop",
    "InstanceDataset",
    "augment_instance",
    "collate_instances",
    "crop_rgb",
    "mask_bbox",
    "mask_boundary_noise",
    "mask_window",
    "remove_depth_outliers",
    "sample_instance",
    "sample_points",
]

log = logging.getLogger(__name__)


N_POINTS = 1028
"""Points per instance (GPV-Pose / HS-Pose)."""
MIN_POINTS = 50
"""Fewest valid depth pixels for a usable instance (HS-Pose skips smaller ones)."""


def mask_window(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Rows ``r0:r1`` and columns ``c0:c1`` of the tight box of an ``(H, W)`` bool mask, None when it is empty
    (two row / column reductions: cheaper than ``np.nonzero`` over the whole image)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def mask_bbox(mask: np.ndarray) -> np.ndarray:
    """Tight box ``(x1, y1, x2, y2)`` (pixels, x2/y2 exclusive) of a non-empty ``(H, W)`` bool mask."""
    window = mask_window(mask)
    if window is None:
        raise ValueError("mask_bbox: the mask is empty")
    r0, r1, c0, c1 = window
    return np.array([c0, r0, c1, r1], dtype=np.float32)


def mask_boundary_noise(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """GPV-Pose's ``defor_2D`` mask noise: in the band where a 2×2 erosion and dilation of the mask
    differ, a random half of the pixels is dropped. ``(H, W)`` bool -> ``(H, W)`` bool."""
    m = mask.astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2, 2))
    band = cv2.dilate(m, kernel) != cv2.erode(m, kernel)
    # one draw per band pixel, in row-major order: the same drops for the whole image and for any window
    # holding the band (InstanceDataset's cached crops)
    drop = np.zeros_like(band)
    drop[band] = rng.random(int(band.sum())) < 0.5
    return mask & ~drop


def remove_depth_outliers(z: np.ndarray, max_extent: float) -> np.ndarray:
    """Keep-mask ``(N,)`` for depths within ``max_extent`` (metres) of the median depth.

    Mask bleeding onto the background gives points far behind the object; an object is never deeper
    than its largest extent, so anything farther than that from the median belongs to something else.
    """
    if len(z) == 0:
        return np.zeros(0, dtype=bool)
    return np.abs(z - np.median(z)) <= max_extent


def sample_points(n_valid: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices ``(n,)`` of ``n`` points drawn from ``n_valid``: without replacement when there are
    enough, otherwise every point once and the rest with replacement."""
    if n_valid >= n:
        return rng.choice(n_valid, n, replace=False)
    extra = rng.choice(n_valid, n - n_valid, replace=True)
    return rng.permutation(np.concatenate([np.arange(n_valid), extra]))


@dataclass
class AugmentConfig:
    """GPV-Pose 3D augmentations (probabilities and ranges from notes/depth_and_eval.md §1.10).

    Point noise follows HS-Pose (object-centred, ``aug_pc_r`` = 0.2) rather than GPV-Pose's
    camera-centred 5 % noise, which moves a point 4 cm at 0.8 m.
    """

    p_scale: float = 0.3
    scale_range: tuple[float, float] = (0.8, 1.2)
    p_rt: float = 0.3
    max_shift: float = 0.05  # metres per axis
    max_angle_deg: float = 15.0
    p_cage: float = 0.3
    cage_categories: tuple[str, ...] = ("bowl", "mug")
    p_noise: float = 0.2
    noise_ratio: float = 0.2
    p_mask_noise: float = 0.5


def augment_instance(sample: dict[str, Any], rng: np.random.Generator, cfg: AugmentConfig,
                     cage: bool = False) -> dict[str, Any]:
    """Apply the training augmentations to ``points`` and the ``R, t, size`` targets consistently.

    ``cage``: the category takes the box-cage deformation (x and z scaled linearly with height).
    """
    P, R, t, size = (sample["points"].astype(np.float64), sample["R"].astype(np.float64),
                     sample["t"].astype(np.float64), sample["size"].astype(np.float64))
    sym = bool(sample["y_symmetric"])
    model = sample.get("model_points")
    model = None if model is None else model.astype(np.float64)
    if rng.random() < cfg.p_scale:
        e = rng.uniform(*cfg.scale_range, size=3)
        if sym:
            e[0] = e[2] = (e[0] + e[2]) / 2
        local = (P - t) @ R  # canonical frame
        P = (local * e) @ R.T + t
        size = size * e
        model = None if model is None else model * e
    if cage and rng.random() < cfg.p_cage:
        e_down, e_up = rng.uniform(*cfg.scale_range, size=2)

        def deform(x: np.ndarray) -> np.ndarray:
            frac = np.clip((x[:, 1] + size[1] / 2) / size[1], 0, 1)[:, None]
            f = e_down + (e_up - e_down) * frac
            return x * np.concatenate([f, np.ones_like(f), f], axis=1)

        local = deform((P - t) @ R)
        P = local @ R.T + t
        if model is not None:
            model = deform(model)
            size = model.max(0) - model.min(0)
        else:
            size = size * np.array([max(e_down, e_up), 1.0, max(e_down, e_up)])
    if rng.random() < cfg.p_rt:
        shift = rng.uniform(-cfg.max_shift, cfg.max_shift, size=3)
        a = np.deg2rad(rng.uniform(-cfg.max_angle_deg, cfg.max_angle_deg, size=3))
        R_aug = (rotation_about_axis(np.array(a[2]), "z") @ rotation_about_axis(np.array(a[1]), "y")
                 @ rotation_about_axis(np.array(a[0]), "x"))
        # rotate about the camera origin, after the shift (points and pose alike)
        P = (P + shift) @ R_aug.T
        t = R_aug @ (t + shift)
        R = R_aug @ R
    if rng.random() < cfg.p_noise:
        P = P + rng.uniform(0, cfg.noise_ratio, size=P.shape) * (P - t)
    out = dict(sample)
    out.update(points=P.astype(np.float32), R=R.astype(np.float32), t=t.astype(np.float32),
               size=size.astype(np.float32),
               size_residual=(size - sample["mean_size"]).astype(np.float32))
    if model is not None:
        out["model_points"] = model.astype(np.float32)
    return out


def crop_rgb(rgb: np.ndarray, bbox: np.ndarray, pixels: np.ndarray, size: int = 224,
             max_side: int = 440) -> tuple[np.ndarray, np.ndarray]:
    """Square RGB crop around a 2D box, resized to ``size``, and the pixels mapped into it.

    The window (DPDN / AG-Pose ``get_bbox``, notes/cleanpose.md §1.1) is centred on the box, its side
    is the larger box side rounded up to a multiple of 40 and capped at ``max_side``; parts outside
    the image are zero.

    Args:
        rgb: ``(H, W, 3)`` uint8 image; bbox: ``(4,)`` x1 y1 x2 y2; pixels: ``(N, 2)`` (u, v) in the image.

    Returns:
        ``(3, size, size)`` float32 in [0, 1] and ``(N, 2)`` float32 pixel coordinates in the crop.
    """
    x1, y1, x2, y2 = (float(v) for v in bbox)
    side = float(min(max(40.0, np.ceil(max(x2 - x1, y2 - y1) / 40.0) * 40.0), max_side))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    s = size / side
    # pixel centres: crop = (image + 0.5 - corner) * s - 0.5
    affine = np.array([[s, 0, (0.5 - (cx - side / 2)) * s - 0.5],
                       [0, s, (0.5 - (cy - side / 2)) * s - 0.5]], dtype=np.float64)
    crop = cv2.warpAffine(rgb, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    uv = pixels.astype(np.float64) @ affine[:, :2].T + affine[:, 2]
    return (crop.astype(np.float32).transpose(2, 0, 1) / 255.0), uv.astype(np.float32)


@dataclass
class InstanceCrop:
    """What :func:`sample_instance` reads of one annotated instance of a frame, cut to a window around its mask:
    the same samples as from the whole frame, from a few percent of its memory (:class:`InstanceDataset`'s
    cache of decoded instances).

    Attributes:
        origin: ``(row, col)`` of the window in the frame.
        mask: ``(h, w)`` bool instance mask in the window (a margin of at least 3 background pixels).
        depth: ``(h, w)`` float32 metres.
        intrinsics, categories, width, height: as the frame's.
        poses, handle_visible: the instance's ground truth as one-element lists (index 0).
        rgb, rgb_origin: the colour pixels an RGB crop of the instance can read (:func:`crop_rgb`'s square
            window plus a margin), and their place; None where no RGB crop is needed.
    """

    origin: tuple[int, int]
    mask: np.ndarray
    depth: np.ndarray
    intrinsics: Any
    categories: Any
    width: int
    height: int
    poses: list | None
    handle_visible: np.ndarray | None
    rgb: np.ndarray | None = None
    rgb_origin: tuple[int, int] = (0, 0)

    @property
    def K(self) -> np.ndarray:
        return self.intrinsics.K

    def full_rgb(self) -> np.ndarray:
        """``(H, W, 3)`` uint8: the stored colour window at its place, zeros elsewhere (what :func:`crop_rgb`
        reads of the frame is inside the window)."""
        if self.rgb is None:
            raise ValueError("InstanceCrop: no colour pixels were kept (built without rgb)")
        out = np.zeros((self.height, self.width, 3), np.uint8)
        r0, c0 = self.rgb_origin
        out[r0:r0 + self.rgb.shape[0], c0:c0 + self.rgb.shape[1]] = self.rgb
        return out

    @classmethod
    def from_frame(cls, frame: Frame, index: int, rgb: bool = False, margin: int = 3) -> InstanceCrop:
        """The crop of annotated instance ``index`` of ``frame`` (its mask non-empty)."""
        full = frame.instance_map == frame.instance_ids[index]
        window = mask_window(full)
        if window is None:
            raise ValueError(f"{frame.source or frame.frame_id}: instance {index} has an empty mask")
        H, W = frame.depth.shape
        r0, r1, c0, c1 = window
        r0, c0, r1, c1 = max(0, r0 - margin), max(0, c0 - margin), min(H, r1 + margin), min(W, c1 + margin)
        colour, colour_origin = None, (0, 0)
        if rgb:
            # crop_rgb's square: side = the larger box side rounded up to 40 (<= 440) around the box centre;
            # mask noise only shrinks the box, so this window (+2 px) holds every pixel it can read
            y1, y2, x1, x2 = window
            side = min(max(40.0, np.ceil(max(x2 - x1, y2 - y1) / 40.0) * 40.0), 440.0)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            q0, q1 = max(0, int(np.floor(cy - side / 2)) - 2), min(H, int(np.ceil(cy + side / 2)) + 2)
            p0, p1 = max(0, int(np.floor(cx - side / 2)) - 2), min(W, int(np.ceil(cx + side / 2)) + 2)
            colour, colour_origin = np.ascontiguousarray(frame.rgb[q0:q1, p0:p1]), (q0, p0)
        hv = frame.handle_visible[index:index + 1].copy() if frame.handle_visible is not None else None
        return cls(origin=(r0, c0), mask=np.ascontiguousarray(full[r0:r1, c0:c1]),
                   depth=np.ascontiguousarray(frame.depth[r0:r1, c0:c1], dtype=np.float32),
                   intrinsics=frame.intrinsics, categories=frame.categories, width=frame.width, height=frame.height,
                   poses=[frame.poses[index]] if frame.poses is not None else None, handle_visible=hv,
                   rgb=colour, rgb_origin=colour_origin)


def sample_instance(frame: Frame | InstanceCrop, mask: np.ndarray, class_id: int, rng: np.random.Generator,
                    n_points: int = N_POINTS, index: int | None = None, mask_noise: bool = False,
                    min_points: int = MIN_POINTS, rgb_size: int | None = None,
                    image_size: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """Build one instance's sample from a frame and its ``(H, W)`` bool mask.

    Args:
        frame: the frame (depth in metres, intrinsics, optional ground truth), or an :class:`InstanceCrop`
            of it (the same sample, from a window of the frame).
        mask: the instance mask (ground truth or detected), of the frame's (or the crop's) size.
        class_id: the category (ground truth or detected).
        rng: randomness for point sampling and mask noise.
        index: position of the instance in ``frame.poses`` for ground-truth targets (None: no targets).
        mask_noise: apply GPV's mask boundary noise (training).
        rgb_size: also add the square RGB crop ``rgb`` and ``rgb_pixels`` (:func:`crop_rgb`).
        image_size: ``(W_in, H_in)``: also add ``image_pixels``, the points' pixels in the frame letterboxed
            to that size (the image itself is per frame: :func:`~demopose.data.detection_samples.letterbox_image`).

    Returns:
        the sample dict (module docstring), or None when fewer than ``min_points`` valid depth pixels remain.
    """
    cat = frame.categories[class_id]
    mean_size = np.asarray(cat.mean_size if cat.mean_size is not None else (0.1, 0.1, 0.1), dtype=np.float32)
    if mask_noise:
        mask = mask_boundary_noise(mask, rng)
    window = mask_window(mask)
    r0, r1, c0, c1 = window if window is not None else (0, 0, 0, 0)
    v, u = np.nonzero(mask[r0:r1, c0:c1] & (frame.depth[r0:r1, c0:c1] > 0))  # row-major, as over the whole image
    v, u = v + r0, u + c0
    z = frame.depth[v, u].astype(np.float64)
    orow, ocol = frame.origin if isinstance(frame, InstanceCrop) else (0, 0)  # pixels in frame coordinates
    v, u = v + orow, u + ocol
    if window is not None:
        r0, r1, c0, c1 = r0 + orow, r1 + orow, c0 + ocol, c1 + ocol
    keep = remove_depth_outliers(z, max_extent=float(np.max(mean_size)) * 1.5)
    u, v, z = u[keep], v[keep], z[keep]
    if len(z) < min_points:
        return None
    idx = sample_points(len(z), n_points, rng)
    uv = np.stack([u[idx], v[idx]], -1).astype(np.float64)
    pts = backproject_pixels(uv, z[idx], frame.K)
    hv = True
    if index is not None and frame.handle_visible is not None:
        hv = bool(frame.handle_visible[index])
    sample: dict[str, Any] = {
        "points": pts.astype(np.float32),
        "pixels": uv.astype(np.float32),
        "class_ids": np.int64(class_id),
        "mean_size": mean_size,
        "y_symmetric": np.bool_(frame.categories.is_y_symmetric(class_id, hv)),
        "mirror_xy": np.bool_(getattr(cat, "mirror_xy", False)),
        "handle_visible": np.bool_(hv),
        "bbox": np.array([c0, r0, c1, r1], np.float32),  # mask_bbox (zeros for an empty mask)
    }
    if index is not None and frame.poses is not None:
        p = frame.poses[index]
        sample.update(R=p.R.astype(np.float32), t=p.t.astype(np.float32), size=p.size.astype(np.float32),
                      size_residual=(p.size - mean_size).astype(np.float32))
    if rgb_size:
        image = frame.full_rgb() if isinstance(frame, InstanceCrop) else frame.rgb
        sample["rgb"], sample["rgb_pixels"] = crop_rgb(image, sample["bbox"], sample["pixels"], int(rgb_size))
    if image_size:
        from demopose.data.detection_samples import letterbox_matrix

        M = letterbox_matrix(frame.width, frame.height, int(image_size[0]), int(image_size[1]))
        sample["image_pixels"] = (uv * M[0, 0] + M[0, 2]).astype(np.float32)
    return sample


def collate_instances(samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack sample dicts (same keys) into a batch dict of tensors with a leading ``B`` dimension; frame
    images (``image`` with ``frame_index``) are stored once per distinct frame, with ``image_index (B,)``."""
    if not samples:
        raise ValueError("collate_instances: empty batch")
    keys = [k for k in samples[0] if k != "image"]
    out = {k: torch.from_numpy(np.stack([np.asarray(s[k]) for s in samples])) for k in keys}
    if "image" in samples[0]:
        frame_of = [int(s.get("frame_index", i)) for i, s in enumerate(samples)]
        first: dict[int, int] = {}
        for i, f in enumerate(frame_of):
            first.setdefault(f, i)
        slot = {f: n for n, f in enumerate(first)}
        out["image"] = torch.from_numpy(np.stack([np.asarray(samples[i]["image"]) for i in first.values()]))
        out["image_index"] = torch.tensor([slot[f] for f in frame_of], dtype=torch.int64)
    return out


class InstanceDataset(torch.utils.data.Dataset):
    """Training / validation instances of a frame dataset, with ground-truth masks.

    Each item is one annotated instance (of a known category, with at least ``min_points`` valid depth
    pixels when indexed). Keys are ``(index, seed)`` pairs (see
    :class:`~demopose.engine.sampler.ResumableSampler`) or plain indices (seed = index).

    Args:
        frames: any sequence of :class:`Frame` (e.g. :class:`~demopose.data.nocs.NOCSDataset`).
        n_points: points per instance.
        train: apply mask noise and 3D augmentations.
        augment: augmentation settings.
        model_points: optional ``fn(frame, index) -> (M, 3)`` mesh samples in the metric object frame.
        rgb_size: add the RGB crop (``rgb``, ``rgb_pixels``) of this side to every sample (None: no crop).
        image_size: ``(W_in, H_in)``: add the letterboxed frame ``image``, ``image_pixels`` and
            ``frame_index`` to every sample (DeMo-Pose's monocular features; None: no image).
        cache: keep every instance decoded in memory (:class:`InstanceCrop`: a window of depth and mask, the
            colour pixels an RGB crop reads, the mesh samples, the letterboxed frame image), filled while the
            dataset is indexed, which reads every frame once anyway: items then cost no image decoding. The
            samples are the same as without the cache. Memory: a depth and mask window per instance (plus one
            letterboxed uint8 image per frame with ``image_size``); turn it off for datasets that do not fit
            (``data.cache_instances``).
    """

    def __init__(self, frames: Sequence[Frame], n_points: int = N_POINTS, train: bool = True,
                 augment: AugmentConfig | None = None,
                 model_points: Callable[[Frame, int], np.ndarray | None] | None = None,
                 min_points: int = MIN_POINTS, rgb_size: int | None = None,
                 image_size: tuple[int, int] | None = None, cache: bool = False) -> None:
        self.frames, self.n_points, self.train = frames, n_points, train
        self.rgb_size = rgb_size
        self.image_size = tuple(int(v) for v in image_size) if image_size else None
        self.augment = augment or AugmentConfig()
        self.model_points = model_points
        self.min_points = min_points
        self.index: list[tuple[int, int]] = []
        self.cache = cache
        self._class_ids: list[int] = []
        self._crops: list[InstanceCrop] = []
        self._mesh_points: list[np.ndarray | None] = []
        self._images: dict[int, np.ndarray] = {}  # frame -> letterboxed uint8 image
        for fi in range(len(frames)):
            f = frames[fi]
            if f.poses is None:
                continue
            counts = np.bincount(f.instance_map[f.depth > 0].ravel(), minlength=int(f.instance_ids.max(initial=0)) + 1)
            for j, inst in enumerate(f.instance_ids):
                if counts[inst] >= min_points:
                    self.index.append((fi, j))
                    self._class_ids.append(int(f.class_ids[j]))
                    if cache:
                        self._crops.append(InstanceCrop.from_frame(f, j, rgb=bool(rgb_size)))
                        self._mesh_points.append(self._load_mesh_points(f, j) if model_points is not None else None)
                        if self.image_size is not None and fi not in self._images:
                            from demopose.data.detection_samples import letterbox_pixels

                            self._images[fi] = letterbox_pixels(f.rgb, self.image_size)
        if not self.index:
            raise ValueError(f"InstanceDataset: no annotated instance with >= {min_points} valid depth pixels")

    def _load_mesh_points(self, frame: Frame, j: int) -> np.ndarray:
        mp = self.model_points(frame, j)
        if mp is None:
            raise FileNotFoundError(f"{frame.source or frame.frame_id}: no mesh samples for instance {j} "
                                    f"({frame.model_names[j] if j < len(frame.model_names) else '?'}); the "
                                    f"Mesh-Point Loss needs every training model's mesh under obj_models/")
        return np.asarray(mp, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        i, seed = (key, key) if isinstance(key, (int, np.integer)) else key
        rng = np.random.default_rng(seed)
        fi, j = self.index[int(i)]
        if self.cache:
            source, k = self._crops[int(i)], 0
            mask = source.mask
        else:
            source, k = self.frames[fi], j
            mask = source.instance_map == source.instance_ids[j]
        cls = self._class_ids[int(i)]
        noise = self.train and rng.random() < self.augment.p_mask_noise
        s = sample_instance(source, mask, cls, rng, self.n_points, index=k, mask_noise=noise, min_points=1,
                            rgb_size=self.rgb_size, image_size=self.image_size)
        if s is None:  # cannot happen for indexed instances unless noise removed everything
            s = sample_instance(source, mask, cls, rng, self.n_points, index=k, min_points=1, rgb_size=self.rgb_size,
                                image_size=self.image_size)
        if self.model_points is not None:
            s["model_points"] = self._mesh_points[int(i)] if self.cache else self._load_mesh_points(source, j)
        if self.image_size is not None:
            from demopose.data.detection_samples import letterbox_image, normalize_image

            s["image"] = normalize_image(self._images[fi]) if self.cache else letterbox_image(source.rgb,
                                                                                             self.image_size)
            s["frame_index"] = np.int64(fi)
        if self.train:
            cage = source.categories[cls].name in self.augment.cage_categories
            s = augment_instance(s, rng, self.augment, cage=cage)
        s["instance_index"] = np.int64(i)
        return s


