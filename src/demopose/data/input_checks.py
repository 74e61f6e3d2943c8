"""Range checks of user inputs that would otherwise give plausible-looking but wrong poses.

A pose network does not fail on wrong camera data: a depth scale off by 10x gives objects 10x too far and too
big, ``fy = 1e-3`` puts them kilometres away, a boolean depth map has no metric depth at all, and soft (float)
masks turned into booleans select the whole image. These checks run at the public boundary (the predictor, the
``predict`` command) and raise ``ValueError`` naming the input, the field, the value and what was expected.

* :func:`check_depth_dtype`: depth must be float metres or integer units (not bool, complex, object, str).
* :func:`check_intrinsics`: ``K`` finite, ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``, focal lengths in
  0.2-5 image widths, ``fx / fy`` in 0.5-2, principal point inside the image.
* :func:`check_masks`: boolean masks, or numbers holding only two levels (0/1, 0/255); never soft masks.
* :func:`check_object_scale`: the observed objects' extents (pixels x depth / focal length) against the
  categories' size priors: objects 4x too big or too small for their category mean that the depth units or
  ``depth_scale`` are wrong. Categories without a size prior are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from demopose.categories import CategoryTable

__all__ = ["SCALE_TOLERANCE", "check_depth_dtype", "check_intrinsics", "check_masks", "check_object_scale",
           "object_scale_ratios"]

SCALE_TOLERANCE = 4.0
"""How far (a factor) the median observed-size / expected-size ratio of a frame's objects may be from its
typical value before :func:`check_object_scale` refuses the frame. Measured on the REAL275 and CAMERA fixture
frames and on generated frames: the largest lateral extent of an object's mask is 0.35-0.8 times its category's
mean diagonal (frame medians 0.45-0.7), so 10x depth-unit errors (ratios near 5 or 0.05) are far outside."""

_TYPICAL_RATIO = 0.55
"""The typical frame-median ratio of :func:`object_scale_ratios` (see :data:`SCALE_TOLERANCE`)."""


def check_depth_dtype(depth: np.ndarray, source: str = "input") -> None:
    """Raise ``ValueError`` unless ``depth`` holds numbers that can be depth: float (metres) or integer units
    (with a depth scale). Boolean, complex, object and string arrays are refused."""
    dt = np.asarray(depth).dtype
    if dt == np.bool_ or not (np.issubdtype(dt, np.floating) or np.issubdtype(dt, np.integer)):
        raise ValueError(f"{source}: depth has dtype {dt}, which cannot hold metric depth; expected float metres or "
                         f"integer units with depth_scale (e.g. uint16 millimetres with depth_scale=0.001)")


def check_intrinsics(K: np.ndarray, width: int, height: int, source: str = "input") -> np.ndarray:
    """Check a pinhole ``K (3, 3)`` for a ``width x height`` image; returns it as float64.

    Raises:
        ValueError: a non-finite entry, a last row other than ``0 0 1``, a focal length outside
            ``0.2-5 x width`` or an ``fx / fy`` outside 0.5-2, or a principal point outside the image; the
            message names ``source``, the field, its value and the expected range.
    """
    try:
        K = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: K must be 3 rows of 3 numbers ({e})") from None
    if K.shape != (3, 3):
        raise ValueError(f"{source}: K must be (3, 3), got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError(f"{source}: K holds NaN or infinite values: {K.tolist()}")
    if not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise ValueError(f"{source}: K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lo, hi = 0.2 * width, 5.0 * width
    for name, f in (("fx", fx), ("fy", fy)):
        if not lo < f < hi:
            raise ValueError(f"{source}: K {name} = {f:.6g} px is implausible for a {width}x{height} image "
                             f"(expected {lo:.0f}-{hi:.0f} px); intrinsics for another resolution, or in metres?")
    if not 0.5 < fx / fy < 2.0:
        raise ValueError(f"{source}: K fx = {fx:.1f} and fy = {fy:.1f} differ by more than a factor 2 (expected "
                         f"nearly square pixels); is one of them wrong?")
    if not (0 <= cx <= width and 0 <= cy <= height):
        raise ValueError(f"{source}: K principal point (cx, cy) = ({cx:.1f}, {cy:.1f}) lies outside the "
                         f"{width}x{height} image (intrinsics for another resolution?)")
    return K


def check_masks(masks: np.ndarray, height: int, width: int, source: str = "masks") -> np.ndarray:
    """``(M, H, W)`` (or one ``(H, W)``) instance masks as bool.

    Accepted: bool, or numbers holding at most two levels (0/1, 0/255, 0.0/1.0) where the lower is 0. Soft masks
    (probabilities) are refused: thresholding them is the caller's decision. An empty mask is refused too.

    Raises:
        ValueError: naming ``source``, the dtype and the values found, the expected shape, or the empty mask.
    """
    m = np.asarray(masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[1:] != (height, width):
        raise ValueError(f"{source}: expected (M, {height}, {width}) masks, got shape {m.shape}")
    if m.dtype != np.bool_:
        if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
            raise ValueError(f"{source}: expected boolean masks, got dtype {m.dtype}")
        levels = np.unique(m)
        two_levels = bool(np.all(np.isfinite(levels))) and len(levels) <= 2 and (len(levels) < 2 or levels[0] == 0)
        if not two_levels:
            shown = ", ".join(f"{v:.3g}" for v in levels[:4]) + (", ..." if len(levels) > 4 else "")
            raise ValueError(f"{source}: expected boolean masks (or two levels such as 0/1 or 0/255), got "
                             f"{m.dtype} with {len(levels)} distinct values ({shown}); threshold soft masks "
                             f"yourself, e.g. masks > 0.5")
        m = m != 0
    empty = [i for i in range(len(m)) if not m[i].any()]
    if empty:
        raise ValueError(f"{source}: mask(s) {empty} are empty (no pixel set)")
    return m


def object_scale_ratios(depth: np.ndarray, K: np.ndarray, regions: Sequence[np.ndarray], class_ids: Sequence[int],
                        categories: CategoryTable, min_pixels: int = 30) -> list[tuple[int, float, float]]:
    """Per object with a size prior: ``(class_id, observed extent (m), ratio to the category's mean diagonal)``.

    The observed extent is the larger of the 5-95 % pixel spans of the region's valid depth pixels, converted
    to metres with the median depth and the focal length: it scales linearly with a wrong depth scale.

    Args:
        depth: ``(H, W)`` metres. K: ``(3, 3)``. regions: ``(H, W)`` bool masks (or boxes turned into masks).
    """
    fx, fy = float(K[0, 0]), float(K[1, 1])
    out = []
    for region, c in zip(regions, class_ids):
        c = int(c)
        if c not in categories or categories[c].mean_size is None:
            continue
        v, u = np.nonzero(region & (depth > 0))
        if len(u) < min_pixels:
            continue
        z = float(np.median(depth[v, u]))
        w = (np.percentile(u, 95) - np.percentile(u, 5) + 1) * z / fx
        h = (np.percentile(v, 95) - np.percentile(v, 5) + 1) * z / fy
        extent = float(max(w, h))
        out.append((c, extent, extent / float(np.linalg.norm(categories[c].mean_size))))
    return out


def check_object_scale(depth: np.ndarray, K: np.ndarray, regions: Sequence[np.ndarray], class_ids: Sequence[int],
                       categories: CategoryTable, source: str = "input", depth_scale: float | None = None) -> None:
    """Refuse a frame whose objects are far too big or too small for their categories (see the module doc).

    Raises:
        ValueError: the median ratio of :func:`object_scale_ratios` is more than :data:`SCALE_TOLERANCE` times
            off its typical value; the message names ``source``, an example object and ``depth_scale``.
    """
    found = object_scale_ratios(depth, K, regions, class_ids, categories)
    if not found:
        return
    med = float(np.median([r for _, _, r in found]))
    factor = med / _TYPICAL_RATIO
    if 1 / SCALE_TOLERANCE <= factor <= SCALE_TOLERANCE:
        return
    c, extent, _ = sorted(found, key=lambda f: f[2])[len(found) // 2]
    expected = float(np.linalg.norm(categories[c].mean_size)) * _TYPICAL_RATIO
    big = factor > 1
    scale = f"depth_scale = {depth_scale:g}" if depth_scale is not None else "the depth_scale"
    raise ValueError(f"{source}: the objects look {factor if big else 1 / factor:.0f}x too "
                     f"{'large' if big else 'small'} for their categories (a {categories[c].name} spans "
                     f"{extent:.3g} m where about {expected:.2g} m is expected): {scale} or the depth units are "
                     f"probably wrong (metres per depth unit: 0.001 for millimetre PNGs), or the focal lengths")
