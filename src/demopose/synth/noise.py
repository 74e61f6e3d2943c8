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

Added in generator version 2 (off in ``DepthNoiseConfig.v1()``):

* projector shadow: the pattern projector sits ``projector_baseline`` beside the camera, so a band
  beside every nearer surface (on the side away from the projector) receives no pattern and has no depth
  (Khoshelham & Elberink 2012, Fig. 1: the "shadow" of the IR projector); computed per image row from the
  projector column ``u_p = u - s·f·b/z`` (a pixel is shadowed when a pixel beside it reaches the projector
  at a column beyond its own);
* flying pixels: on depth discontinuities a share of the pixels get a depth between the near and the far
  surface (mixed returns, as in the REAL275 depth maps);
* edge erosion: the silhouette of nearer surfaces loses a random share of its outermost pixels;
* a band without depth along one image border (the depth camera's field of view does not cover the
  colour camera's after registration; the REAL275 frames lose a 10-35 px band on the left);
* specular holes: glossy pixels whose surface faces the camera (the projector's mirror reflection
  saturates the IR camera) lose depth.

Colour model: a slight Gaussian blur, per-channel gain (white balance), signal-dependent shot noise
plus read noise, rounding to 8 bit; version 2 adds exposure (a global gain in EV), saturation
changes, optional motion blur, vignetting (``cos⁴``-like radial falloff, ``1 - v·r²`` with ``r`` the
distance from the centre over the half diagonal) and JPEG compression.

Everything is a pure function of its inputs and the ``numpy.random.Generator`` passed in, so one seed
gives one result.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ColorNoiseConfig", "DepthNoiseConfig", "add_color_noise", "add_depth_noise", "projector_shadow", "vignette"]


@dataclass(frozen=True)
class DepthNoiseConfig:
    """Parameters of :func:`add_depth_noise` (metres, pixels, degrees)."""

    sigma_k: float = 2.0e-3
    correlated_fraction: float = 0.5
    focal_baseline: float = 43.5
    subpixel: int = 8
    edge_threshold: float = 0.02
    edge_width: tuple[int, int] = (1, 3)
    edge_drop_prob: float = 0.05
    grazing_deg: float = 75.0
    dark_threshold: float = 0.06
    speckle_prob: float = 0.0005
    blobs: tuple[int, int] = (0, 4)
    blob_radius: tuple[float, float] = (2.0, 7.0)
    min_depth: float = 0.15
    max_depth: float = 4.0
    projector_shadow: bool = True
    projector_baseline: float = 0.035
    projector_side: int = 1
    flying_prob: float = 0.02
    erosion_prob: float = 0.15
    border_band: tuple[int, int] = (8, 25)
    border_side: str = "left"
    specular_holes: float = 0.5
    hole_blob_px: float = 3.0

    @classmethod
    def v1(cls) -> DepthNoiseConfig:
        """The generator-version-1 model (none of the version-2 artefacts)."""
        return cls(sigma_k=1.5e-3, edge_drop_prob=0.8, speckle_prob=0.002, projector_shadow=False, flying_prob=0.0,
                   erosion_prob=0.0, border_band=(0, 0), specular_holes=0.0, hole_blob_px=0.0)


@dataclass(frozen=True)
class ColorNoiseConfig:
    """Parameters of :func:`add_color_noise` (intensities in 8-bit units)."""

    blur_sigma: tuple[float, float] = (0.1, 0.5)
    gain: float = 0.05
    shot: tuple[float, float] = (0.2, 0.6)
    read: tuple[float, float] = (1.0, 3.0)
    exposure: tuple[float, float] = (-0.3, 0.4)
    saturation: tuple[float, float] = (0.6, 1.1)
    motion_blur_prob: float = 0.1
    motion_blur_px: tuple[float, float] = (1.0, 4.0)
    vignetting: tuple[float, float] = (0.0, 0.3)
    jpeg_quality: tuple[int, int] = (70, 95)

    @classmethod
    def v1(cls) -> ColorNoiseConfig:
        """The generator-version-1 model (no exposure, saturation, motion blur, vignetting or JPEG)."""
        return cls(blur_sigma=(0.3, 0.9), exposure=(0.0, 0.0), saturation=(1.0, 1.0), motion_blur_prob=0.0,
                   vignetting=(0.0, 0.0), jpeg_quality=(0, 0))


@functools.lru_cache(maxsize=4)
def _unit_rays(H: int, W: int, focal: float) -> np.ndarray:
    """``(H, W, 3)`` unit view rays through the pixel centres (principal point at the image centre)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    rays = np.stack([(u - W / 2) / focal, (v - H / 2) / focal, np.ones_like(u)], -1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    rays.setflags(write=False)
    return rays


def add_depth_noise(depth: np.ndarray, normals: np.ndarray, albedo: np.ndarray, rng: np.random.Generator,
                    focal: float, cfg: DepthNoiseConfig = DepthNoiseConfig(),
                    specular: np.ndarray | None = None) -> np.ndarray:
    """Corrupt a clean depth map like a structured-light sensor.

    Args:
        depth: ``(H, W)`` float32 metres, 0 = no surface.
        normals: ``(H, W, 3)`` unit normals in the camera frame (facing the camera).
        albedo: ``(H, W, 3)`` uint8 surface colour before lighting (dark -> holes).
        rng: the frame's generator. focal: focal length in pixels (for the view rays).
        cfg: parameters. specular: ``(H, W)`` float32 0..1 mirror-reflection strength towards the camera
            (:attr:`demopose.synth.render.RenderOutput.specular`; None: no glossy surfaces).

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
    if cfg.hole_blob_px > 0:  # version 2: in blobs (real grazing-angle losses are patches, not speckle)
        u_graze = _blob_uniform(rng, H, W, cfg.hole_blob_px)
    else:
        u_graze = rng.random((H, W), dtype=np.float32)
    hole |= valid & (u_graze < p_graze)

    # dark surfaces (version 2: the holes come in blobs, a spatially correlated uniform field)
    lum = (albedo.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0
    p_dark = np.clip((cfg.dark_threshold - lum) / cfg.dark_threshold, 0, 1)
    if cfg.hole_blob_px > 0:
        u_dark = _blob_uniform(rng, H, W, cfg.hole_blob_px)
    else:
        u_dark = rng.random((H, W), dtype=np.float32)
    hole |= valid & (u_dark < p_dark)

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

    # ---- version 2 artefacts (each drawn only when on, so that version 1 stays bit-identical)
    if cfg.flying_prob > 0 or cfg.erosion_prob > 0:
        k3 = np.ones((3, 3), np.uint8)
        near = cv2.erode(dzf, k3)
        far = cv2.dilate(np.where(valid, dz, 0), k3)
        if cfg.flying_prob > 0:  # mixed returns on the far side of an edge
            edge = valid & ((dzf - near) > cfg.edge_threshold) & ~hole
            fly = edge & (rng.random((H, W), dtype=np.float32) < cfg.flying_prob)
            w = rng.random((H, W), dtype=np.float32)
            z = np.where(fly, np.round((near + w * (dz - near)) * 1000.0) / 1000.0, z)
        if cfg.erosion_prob > 0:  # the outermost pixels of nearer surfaces
            rim = valid & ((far - dz) > cfg.edge_threshold)
            hole |= rim & (rng.random((H, W), dtype=np.float32) < cfg.erosion_prob)
    if cfg.projector_shadow:
        hole |= projector_shadow(depth, focal, cfg.projector_baseline, cfg.projector_side)
    if cfg.border_band[1] > 0:
        bw = int(round(rng.uniform(cfg.border_band[0], cfg.border_band[1]) * W / 640.0))
        if bw > 0:
            sl = {"left": np.s_[:, :bw], "right": np.s_[:, W - bw:], "top": np.s_[:bw, :],
                  "bottom": np.s_[H - bw:, :]}[cfg.border_side]
            hole[sl] = True
    if cfg.specular_holes > 0 and specular is not None:
        hole |= valid & (u_dark < cfg.specular_holes * specular)

    return np.where(hole, 0.0, z).astype(np.float32)


def _blob_uniform(rng: np.random.Generator, H: int, W: int, sigma: float) -> np.ndarray:
    """``(H, W)`` float32 values with a uniform marginal on [0, 1] but correlated over ``sigma`` pixels
    (Gaussian-blurred white noise through the logistic approximation of the normal CDF)."""
    g = cv2.GaussianBlur(rng.standard_normal((H, W), dtype=np.float32), (0, 0), sigma)
    g /= max(float(g.std()), 1e-6)
    return (1.0 / (1.0 + np.exp(-1.702 * g))).astype(np.float32)


def projector_shadow(depth: np.ndarray, focal: float, baseline: float = 0.035, side: int = 1) -> np.ndarray:
    """Pixels the pattern projector cannot reach (occluded from it by a nearer surface).

    The projector is ``baseline`` metres beside the camera along ``side · x`` (``+1``: to the right in
    the image), so a surface point at depth ``z`` is lit from projector column
    ``u_p = u - side · focal · baseline / z``; along a row, a point is in shadow when a point on the
    projector's side of it maps to a projector column at or before its own (a nearer surface blocks the ray).

    Args:
        depth: ``(H, W)`` float metres, 0 = no surface. focal: focal length in pixels.
        baseline: projector-camera distance, metres. side: ``+1`` or ``-1``.

    Returns:
        ``(H, W)`` bool shadow mask (False off surfaces).
    """
    valid = depth > 0
    H, W = depth.shape
    disp = np.zeros((H, W), np.float32)
    np.divide(np.float32(focal * baseline), depth, out=disp, where=valid)
    u = np.arange(W, dtype=np.float32)[None, :]
    up = np.where(valid, u - side * disp, np.inf) if side > 0 else np.where(valid, -(u + disp), np.inf)
    if side < 0:  # mirror the rows: the scan always runs away from the projector
        up = up[:, ::-1]
    m = np.minimum.accumulate(up[:, ::-1], axis=1)[:, ::-1]  # min over j >= i
    nxt = np.concatenate([m[:, 1:], np.full((H, 1), np.inf, np.float32)], 1)  # min over j > i
    shadow = valid[:, ::-1] if side < 0 else valid
    shadow = shadow & (nxt < up - 0.5)
    return shadow[:, ::-1] if side < 0 else shadow


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
    if s > 0:
        img = cv2.GaussianBlur(img, (0, 0), s)
    img *= (1.0 + cfg.gain * rng.uniform(-1, 1, 3)).astype(np.float32)
    shot = float(rng.uniform(*cfg.shot))
    read = float(rng.uniform(*cfg.read))
    # version 2 (each drawn only when on): motion blur, exposure, saturation, vignetting before the noise
    if cfg.motion_blur_prob > 0 and rng.random() < cfg.motion_blur_prob:
        img = _motion_blur(img, float(rng.uniform(*cfg.motion_blur_px)), float(rng.uniform(0, 180)))
    if cfg.exposure != (0.0, 0.0):
        img *= np.float32(2.0 ** rng.uniform(*cfg.exposure))
    if cfg.saturation != (1.0, 1.0):
        a = np.float32(rng.uniform(*cfg.saturation))
        lum = img @ np.array([0.299, 0.587, 0.114], np.float32)
        img = lum[..., None] + a * (img - lum[..., None])
    if cfg.vignetting != (0.0, 0.0):
        img *= vignette(img.shape[0], img.shape[1], float(rng.uniform(*cfg.vignetting)))[..., None]
    sigma = np.sqrt(shot * np.clip(img, 0, None) + read**2)
    img += sigma * rng.standard_normal(img.shape, dtype=np.float32)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if cfg.jpeg_quality[1] > 0:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(out[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, q])
        out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out


@functools.lru_cache(maxsize=8)
def _radius2(H: int, W: int) -> np.ndarray:
    """``(H, W)`` float32 squared distance from the image centre over the squared half diagonal."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    r2 = ((u - (W - 1) / 2) ** 2 + (v - (H - 1) / 2) ** 2) / ((W / 2) ** 2 + (H / 2) ** 2)
    r2.setflags(write=False)
    return r2


def vignette(H: int, W: int, strength: float) -> np.ndarray:
    """``(H, W)`` float32 gain ``1 - strength · r²`` (1 at the centre, ``1 - strength`` in the corners)."""
    return (1.0 - np.float32(strength) * _radius2(H, W)).astype(np.float32)


def _motion_blur(img: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    """Blur ``(H, W, 3)`` float32 along a line of ``length`` pixels at ``angle_deg`` (camera shake)."""
    n = max(int(np.ceil(length)) | 1, 3)
    k = np.zeros((n, n), np.float32)
    c = n // 2
    a = np.radians(angle_deg)
    for t in np.linspace(-length / 2, length / 2, 4 * n):
        k[int(round(c + t * np.sin(a))), int(round(c + t * np.cos(a)))] = 1.0
    return cv2.filter2D(img, -1, k / k.sum())
