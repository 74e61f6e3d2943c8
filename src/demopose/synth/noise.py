"""Sensor realism for synthetic frames: structured-light depth noise and holes, colour noise and blur.

Depth model (a structured-light / active-stereo camera such as Kinect v1 or RealSense D4xx):

* axial noise with ``σ(z) = k · z²`` (Khoshelham & Elberink, Sensors 2012: the random error of the
  Kinect grows with the square of the distance; ``k = 1.5e-3`` m⁻¹ gives 1.5 mm at 1 m), partly
  spatially correlated (a low-resolution noise field upsampled) and partly per pixel;
* disparity quantisation: ``d = f·b / z`` is rounded to ``1/subpixel`` pixel steps, so depth comes
  in steps of ``z² / (f·b · subpixel)`` (~2.9 mm at 1 m with f·b = 43.5 px·m, 1/8 px), then
  millimetre quantisation (the PNG unit);
* holes: at depth discontinuities (a band of random width on the far side of each edge, where
  the projector is occluded), at grazing angles (surface normal almost perpendicular to the view
  ray), on dark surfaces (low albedo: the IR pattern is absorbed), random speckle holes and a few
  blobs, and beyond the working range.

Colour model: a slight Gaussian blur, per-channel gain (white balance), signal-dependent shot noise
plus read noise, rounding to 8 bit.

Everything is a pure function of its inputs and the ``numpy.random.Generator`` passed in, so one seed
gives one result.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ColorNoiseConfig", "DepthNoiseConfig", "add_color_noise", "add_depth_noise"]


@dataclass(frozen=True)
class DepthNoiseConfig:
    """Parameters of :func:`add_depth_noise` (metres, pixels, degrees)."""

    sigma_k: float = 1.5e-3
    correlated_fraction: float = 0.5
    focal_baseline: float = 43.5
    subpixel: int = 8
    edge_threshold: float = 0.02
    edge_width: tuple[int, int] = (1, 3)
    edge_drop_prob: float = 0.8
    grazing_deg: float = 75.0
    dark_threshold: float = 0.06
    speckle_prob: float = 0.002
    blobs: tuple[int, int] = (0, 4)
    blob_radius: tuple[float, float] = (2.0, 7.0)
    min_depth: float = 0.15
    max_depth: float = 4.0


@dataclass(frozen=True)
class ColorNoiseConfig:
    """Parameters of :func:`add_color_noise` (intensities in 8-bit units)."""

    blur_sigma: tuple[float, float] = (0.3, 0.9)
    gain: float = 0.05
    shot: tuple[float, float] = (0.2, 0.6)
    read: tuple[float, float] = (1.0, 3.0)


@functools.lru_cache(maxsize=4)
def _unit_rays(H: int, W: int, focal: float) -> np.ndarray:
    """``(H, W, 3)`` unit view rays through the pixel centres (principal point at the image centre)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    rays = np.stack([(u - W / 2) / focal, (v - H / 2) / focal, np.ones_like(u)], -1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    rays.setflags(write=False)
    return rays


def add_depth_noise(depth: np.ndarray, normals: np.ndarray, albedo: np.ndarray, rng: np.random.Generator,
                    focal: float, cfg: DepthNoiseConfig = DepthNoiseConfig()) -> np.ndarray:
    """Corrupt a clean depth map like a structured-light sensor.

    Args:
        depth: ``(H, W)`` float32 metres, 0 = no surface.
        normals: ``(H, W, 3)`` unit normals in the camera frame (facing the camera).
        albedo: ``(H, W, 3)`` uint8 surface colour before lighting (dark -> holes).
        rng: the frame's generator. focal: focal length in pixels (for the view rays).
        cfg: parameters.

    Returns:
        ``(H, W)`` float32 metres, quantised to 1 mm, 0 in holes.
    """
    H, W = depth.shape
    valid = depth > 0
    z = depth.astype(np.float64)

    # axial noise, half correlated (upsampled coarse field), half per pixel
    coarse = rng.standard_normal((max(H // 8, 2), max(W // 8, 2)))
    corr = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)
    corr /= max(corr.std(), 1e-6)
    white = rng.standard_normal((H, W), dtype=np.float32)
    a = cfg.correlated_fraction
    n = np.sqrt(a) * corr + np.sqrt(1 - a) * white
    z = z + cfg.sigma_k * z**2 * n

    # disparity quantisation then millimetres
    with np.errstate(divide="ignore", invalid="ignore"):
        d = cfg.focal_baseline / np.where(z > 0, z, np.inf)
        d = np.round(d * cfg.subpixel) / cfg.subpixel
        z = np.where(d > 0, cfg.focal_baseline / np.where(d > 0, d, 1), 0.0)
    z = np.round(z * 1000.0) / 1000.0

    hole = ~valid | (z < cfg.min_depth) | (z > cfg.max_depth)

    # depth discontinuities: drop a band on the far side of each edge
    dz = depth.astype(np.float32)
    big = np.float32(1e3)
    dzf = np.where(valid, dz, big)
    width = int(rng.integers(cfg.edge_width[0], cfg.edge_width[1] + 1))
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    band = valid & ((dzf - cv2.erode(dzf, kernel)) > cfg.edge_threshold)  # within `width` px of a nearer surface
    band |= valid & (cv2.dilate((~valid).astype(np.uint8), kernel) > 0)  # next to a missing return
    hole |= band & (rng.random((H, W), dtype=np.float32) < cfg.edge_drop_prob)

    # grazing angles
    cos = np.abs(np.einsum("hwc,hwc->hw", _unit_rays(H, W, float(focal)), normals.astype(np.float32)))
    cos_lim = np.cos(np.radians(cfg.grazing_deg))
    p_graze = np.clip((cos_lim - cos) / max(cos_lim, 1e-6), 0, 1) * 0.9 + (cos < cos_lim) * 0.1
    hole |= valid & (rng.random((H, W), dtype=np.float32) < p_graze)

    # dark surfaces
    lum = (albedo.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0
    p_dark = np.clip((cfg.dark_threshold - lum) / cfg.dark_threshold, 0, 1)
    hole |= valid & (rng.random((H, W), dtype=np.float32) < p_dark)

    # speckles and blobs
    hole |= rng.random((H, W), dtype=np.float32) < cfg.speckle_prob
    nb = int(rng.integers(cfg.blobs[0], cfg.blobs[1] + 1))
    if nb:
        blob = np.zeros((H, W), np.uint8)
        scale = W / 640.0
        for _ in range(nb):
            c = (int(rng.integers(W)), int(rng.integers(H)))
            ax = tuple(max(int(rng.uniform(*cfg.blob_radius) * scale), 1) for _ in range(2))
            cv2.ellipse(blob, c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        hole |= blob > 0

    return np.where(hole, 0.0, z).astype(np.float32)


def add_color_noise(rgb: np.ndarray, rng: np.random.Generator,
                    cfg: ColorNoiseConfig = ColorNoiseConfig()) -> np.ndarray:
    """Blur, white-balance gain, shot + read noise.

    Args:
        rgb: ``(H, W, 3)`` uint8. rng: the frame's generator. cfg: parameters.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    img = rgb.astype(np.float32)
    s = float(rng.uniform(*cfg.blur_sigma))
    img = cv2.GaussianBlur(img, (0, 0), s)
    img *= (1.0 + cfg.gain * rng.uniform(-1, 1, 3)).astype(np.float32)
    shot = float(rng.uniform(*cfg.shot))
    read = float(rng.uniform(*cfg.read))
    sigma = np.sqrt(shot * np.clip(img, 0, None) + read**2)
    img += sigma * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
