"""PnP of a cuboid seen at its projected corners, and the metric scale of a unit cuboid from depth.

Convention: OpenCV camera frame, ``K (3, 3)`` intrinsics in pixels, pixel ``(u, v)`` with ``u`` the column; the
cuboid is centred on the object origin with NOCS corner order (:func:`demopose.geometry.box3d.box_corners`) plus
the centre as a ninth point. PnP recovers ``(R, t)`` only up to the scale of the scene about the camera: the
cuboid is given with unit diagonal and :func:`scale_from_depth` finds the metric factor. NumPy in, NumPy out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from demopose._checks import check_shape
from demopose.geometry.box3d import box_corners

__all__ = ["KeypointPose", "cuboid_depth", "scale_from_depth", "solve_cuboid_pnp"]


@dataclass
class KeypointPose:
    """PnP result of one object: rotation ``R (3, 3)``, translation ``t_unit (3,)`` of the unit-diagonal
    cuboid (metres per unit of scale), ``ok`` whether a solution in front of the camera was found."""

    R: np.ndarray
    t_unit: np.ndarray
    ok: bool


def _object_points(rel_size: np.ndarray) -> np.ndarray:
    return np.concatenate([box_corners(np.asarray(rel_size, np.float64)), np.zeros((1, 3))], 0)


def solve_cuboid_pnp(keypoints: np.ndarray, rel_size: np.ndarray, K: np.ndarray) -> KeypointPose:
    """EPnP + iterative refinement of the cuboid ``rel_size (3,)`` seen at ``keypoints (9, 2)`` (8 corners
    in NOCS order + centre, pixels) by intrinsics ``K (3, 3)``."""
    keypoints = np.asarray(keypoints, np.float64)
    check_shape(keypoints, "9 2", "keypoints")
    obj = _object_points(rel_size)
    img = np.ascontiguousarray(keypoints.reshape(-1, 1, 2))
    Km = np.asarray(K, np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, Km, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok2, rvec2, tvec2 = cv2.solvePnP(obj, img, Km, None, rvec=rvec.copy(), tvec=tvec.copy(),
                                         useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
        if ok2 and np.all(np.isfinite(tvec2)):
            rvec, tvec = rvec2, tvec2
    R = cv2.Rodrigues(rvec)[0] if ok else np.eye(3)
    t = tvec.reshape(3) if ok else np.array([0.0, 0.0, 1.0])
    return KeypointPose(R, t, bool(ok and t[2] > 0 and np.all(np.isfinite(t))))


def cuboid_depth(uv: np.ndarray, R: np.ndarray, t: np.ndarray, size: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Depth ``z (N,)`` (metres) of the first intersection of the pixel rays ``uv (N, 2)`` with the box
    ``(R, t, size)``; NaN where a ray misses (slab method in the object frame)."""
    uv = np.asarray(uv, np.float64)
    Kinv = np.linalg.inv(np.asarray(K, np.float64))
    d_cam = np.concatenate([uv, np.ones((len(uv), 1))], 1) @ Kinv.T  # z component 1
    o = -R.T @ t  # camera centre in the object frame
    d = d_cam @ R  # ray directions in the object frame
    half = np.asarray(size, np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - o) / d
        t2 = (half - o) / d
    tmin = np.nanmax(np.minimum(t1, t2), axis=1)
    tmax = np.nanmin(np.maximum(t1, t2), axis=1)
    hit = (tmax >= tmin) & (tmax > 0)
    return np.where(hit, np.maximum(tmin, 0.0), np.nan)  # ray parameter = camera depth (d_cam z = 1)


def scale_from_depth(depth: np.ndarray, box: np.ndarray, R: np.ndarray, t_unit: np.ndarray, rel_size: np.ndarray,
                K: np.ndarray, mask: np.ndarray | None = None, max_pixels: int = 4000) -> float | None:
    """Robust metric scale ``λ``: median of observed depth over the depth of the unit cuboid, on the valid
    depth pixels inside ``box (4,)`` (x1 y1 x2 y2, original pixels; and ``mask (H, W)`` when given) whose
    rays hit the cuboid. None when no pixel qualifies."""
    H, W = depth.shape
    x1, y1 = max(int(np.floor(box[0] + 0.5)), 0), max(int(np.floor(box[1] + 0.5)), 0)
    x2, y2 = min(int(np.ceil(box[2] + 0.5)), W), min(int(np.ceil(box[3] + 0.5)), H)
    if x2 <= x1 or y2 <= y1:
        return None
    sub = depth[y1:y2, x1:x2]
    sel = np.isfinite(sub) & (sub > 0)
    if mask is not None:
        sel &= mask[y1:y2, x1:x2].astype(bool)
    v, u = np.nonzero(sel)
    if len(u) == 0:
        return None
    if len(u) > max_pixels:  # evenly strided subset: deterministic
        step = int(np.ceil(len(u) / max_pixels))
        u, v = u[::step], v[::step]
    z_obs = sub[v, u].astype(np.float64)
    z_box = cuboid_depth(np.stack([u + x1, v + y1], 1).astype(np.float64), R, t_unit, rel_size, K)
    ok = np.isfinite(z_box) & (z_box > 0)
    if not ok.any():
        return None
    return float(np.median(z_obs[ok] / z_box[ok]))
