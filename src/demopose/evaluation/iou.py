"""3D IoU between posed boxes, in the two labelled modes of the NOCS evaluator.

``nocs``
    Bit-compatible with the published evaluation code (hughw19/NOCS_CVPR2019 ``utils.py``,
    ``compute_3d_iou_new``), *including its bug*: the 8 camera-frame corners are held as a ``3×8``
    array and the box "extents" are taken with ``max/min`` along **axis 0**, i.e. over the x, y, z
    coordinates of each corner. The result is 8 numbers per box that are compared corner by corner
    (so the NOCS corner order matters, see :mod:`demopose.geometry.box3d`); it is neither the oriented
    nor the axis-aligned IoU (NOCS issue #47). Every published REAL275 / CAMERA25 number uses it.
``exact``
    The true IoU of the two oriented boxes: the intersection is the convex polyhedron spanned by the
    corners of each box inside the other and the crossings of each box's edges with the other's faces;
    its volume is that point set's convex hull volume (``scipy.spatial.ConvexHull``).

In both modes a pair flagged y-symmetric (the ground truth's category is symmetric about y, or it is a
mug whose handle is not visible) takes the maximum IoU over the predicted box rotated about its own y
axis by ``2πi/20``, ``i = 0..19`` (maximum started at 0, as in the published code).

Convention: boxes are given as ``R`` (object -> OpenCV camera), ``t`` (box centre, metres) and
``size`` (metric extents along the object x, y, z axes); see :mod:`demopose.geometry.pose`.
"""

from __future__ import annotations

import numpy as np

from demopose.geometry import box_corners, box_corners_in_camera, y_symmetric_candidates

__all__ = ["IOU_MODES", "N_SYMMETRY_STEPS", "iou_3d", "iou_3d_exact", "iou_3d_nocs"]

IOU_MODES = ("nocs", "exact")
"""The two IoU modes; every metric name and output is labelled with one of them."""

N_SYMMETRY_STEPS = 20
"""Rotations about y tried for y-symmetric pairs (hughw19/NOCS_CVPR2019 ``utils.py``: ``n = 20``)."""

_EDGES = np.array([(0, 1), (0, 2), (1, 3), (2, 3), (4, 5), (4, 6), (5, 7), (6, 7),
                   (0, 4), (1, 5), (2, 6), (3, 7)])


def _nocs_extents(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The buggy per-corner "max/min" of the published code: ``(*, 8, 3)`` -> two ``(*, 8)`` arrays."""
    return corners.max(axis=-1), corners.min(axis=-1)


def iou_3d_nocs(R1: np.ndarray, t1: np.ndarray, size1: np.ndarray,
                R2: np.ndarray, t2: np.ndarray, size2: np.ndarray) -> np.ndarray:
    """Pairwise legacy NOCS IoU (axis-0 bug, see module docstring), no symmetry search.

    Args:
        R1, t1, size1: ``(M, 3, 3)``, ``(M, 3)``, ``(M, 3)`` first boxes (metres).
        R2, t2, size2: ``(G, 3, 3)``, ``(G, 3)``, ``(G, 3)`` second boxes.

    Returns:
        ``(M, G)`` float64 IoU.
    """
    max1, min1 = _nocs_extents(box_corners_in_camera(np.asarray(R1, float), np.asarray(t1, float),
                                                     np.asarray(size1, float)))
    max2, min2 = _nocs_extents(box_corners_in_camera(np.asarray(R2, float), np.asarray(t2, float),
                                                     np.asarray(size2, float)))
    return _nocs_iou_from_extents(max1, min1, max2, min2)


def _nocs_iou_from_extents(max1: np.ndarray, min1: np.ndarray, max2: np.ndarray,
                           min2: np.ndarray) -> np.ndarray:
    """``max1, min1 (..., 8)`` against ``max2, min2 (G, 8)`` -> ``(..., G)``."""
    d = np.minimum(max1[..., None, :], max2) - np.maximum(min1[..., None, :], min2)
    inter = np.where(d.min(axis=-1) < 0, 0.0, np.prod(d, axis=-1))
    vol1 = np.prod(max1 - min1, axis=-1)
    vol2 = np.prod(max2 - min2, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (vol1[..., None] + vol2 - inter)


def _local_hits(corners_other: np.ndarray, half: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Points of the intersection found from one box's side, in that box's local frame.

    Args:
        corners_other: ``(P, 8, 3)`` corners of the other box, expressed in this box's frame.
        half: ``(P, 3)`` this box's half extents.

    Returns:
        ``points (P, 80, 3)`` and ``valid (P, 80)``: the other box's corners inside this box and the
        crossings of its 12 edges with this box's 6 face planes that lie on the face.
    """
    tol = half[:, None, :] + eps
    inside = np.all(np.abs(corners_other) <= tol, axis=-1)  # (P, 8)
    p0 = corners_other[:, _EDGES[:, 0]]  # (P, 12, 3)
    d = corners_other[:, _EDGES[:, 1]] - p0
    planes = np.concatenate([half, -half], axis=-1)  # (P, 6): +x +y +z -x -y -z
    axis = np.array([0, 1, 2, 0, 1, 2])
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (planes[:, None, :] - p0[:, :, axis]) / d[:, :, axis]  # (P, 12, 6)
    ok = np.isfinite(u) & (u >= 0) & (u <= 1)
    u = np.where(ok, u, 0.0)
    pts = p0[:, :, None, :] + u[..., None] * d[:, :, None, :]  # (P, 12, 6, 3)
    ok &= np.all(np.abs(pts) <= tol[:, :, None, :], axis=-1)
    P = len(corners_other)
    points = np.concatenate([corners_other, pts.reshape(P, 72, 3)], axis=1)
    valid = np.concatenate([inside, ok.reshape(P, 72)], axis=1)
    return points, valid


def _hull_volume(points: np.ndarray) -> float:
    from scipy.spatial import ConvexHull, QhullError

    if len(points) < 4:
        return 0.0
    try:
        return float(ConvexHull(points).volume)
    except (QhullError, ValueError):  # flat or degenerate intersection (touching boxes)
        return 0.0


def _exact_iou_pairs(R1: np.ndarray, t1: np.ndarray, s1: np.ndarray,
                     R2: np.ndarray, t2: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Exact oriented IoU for ``P`` pairs of boxes (arrays with leading dim ``P``) -> ``(P,)``."""
    P = len(R1)
    vol1, vol2 = np.prod(s1, axis=-1), np.prod(s2, axis=-1)
    out = np.zeros(P)
    # bounding-sphere rejection: boxes whose centres are further apart than their half diagonals
    near = np.linalg.norm(t1 - t2, axis=-1) <= (np.linalg.norm(s1, axis=-1) + np.linalg.norm(s2, axis=-1)) / 2
    idx = np.nonzero(near)[0]
    if len(idx) == 0:
        return out
    R1, t1, s1, R2, t2, s2 = R1[idx], t1[idx], s1[idx], R2[idx], t2[idx], s2[idx]
    c1 = box_corners_in_camera(R1, t1, s1)  # (P, 8, 3)
    c2 = box_corners_in_camera(R2, t2, s2)
    # tolerance for points on a face: stored rotations are often only float32-orthonormal (~1e-8)
    eps = 1e-6 * np.maximum(np.abs(s1).max(), np.abs(s2).max())
    # points from box 1's side, found in box 1's frame, then back to the camera frame
    q, v1 = _local_hits(np.einsum("pji,pkj->pki", R1, c2 - t1[:, None]), s1 / 2, eps)
    pts1 = np.einsum("pij,pkj->pki", R1, q) + t1[:, None]
    q, v2 = _local_hits(np.einsum("pji,pkj->pki", R2, c1 - t2[:, None]), s2 / 2, eps)
    pts2 = np.einsum("pij,pkj->pki", R2, q) + t2[:, None]
    pts = np.concatenate([pts1, pts2], axis=1)
    valid = np.concatenate([v1, v2], axis=1)
    for k, i in enumerate(idx):
        inter = _hull_volume(pts[k][valid[k]])
        out[i] = inter / (vol1[i] + vol2[i] - inter)
    return out


def iou_3d_exact(R1: np.ndarray, t1: np.ndarray, size1: np.ndarray,
                 R2: np.ndarray, t2: np.ndarray, size2: np.ndarray) -> np.ndarray:
    """Pairwise exact oriented-box IoU, no symmetry search.

    Args:
        R1, t1, size1: ``(M, 3, 3)``, ``(M, 3)``, ``(M, 3)`` first boxes (metres).
        R2, t2, size2: ``(G, 3, 3)``, ``(G, 3)``, ``(G, 3)`` second boxes.

    Returns:
        ``(M, G)`` float64 IoU in [0, 1].
    """
    R1, t1, s1 = (np.asarray(a, float) for a in (R1, t1, size1))
    R2, t2, s2 = (np.asarray(a, float) for a in (R2, t2, size2))
    M, G = len(R1), len(R2)
    i, j = np.meshgrid(np.arange(M), np.arange(G), indexing="ij")
    i, j = i.ravel(), j.ravel()
    return _exact_iou_pairs(R1[i], t1[i], s1[i], R2[j], t2[j], s2[j]).reshape(M, G)


def iou_3d(R1: np.ndarray, t1: np.ndarray, size1: np.ndarray,
           R2: np.ndarray, t2: np.ndarray, size2: np.ndarray,
           symmetric: np.ndarray | None = None, mode: str = "nocs",
           n_steps: int = N_SYMMETRY_STEPS) -> np.ndarray:
    """Pairwise 3D IoU of predictions against ground truths with the NOCS symmetry search.

    Args:
        R1, t1, size1: predictions, ``(M, 3, 3)``, ``(M, 3)``, ``(M, 3)`` (metres).
        R2, t2, size2: ground truths, ``(G, 3, 3)``, ``(G, 3)``, ``(G, 3)``.
        symmetric: ``(M, G)`` or ``(G,)`` bool; where True the prediction is rotated about its own y
            axis by ``2πi/n_steps`` and the maximum IoU is kept (None: no symmetric pair).
        mode: ``"nocs"`` (legacy, bit-compatible with the published code) or ``"exact"``.

    Returns:
        ``(M, G)`` float64 IoU.
    """
    if mode not in IOU_MODES:
        raise ValueError(f"mode: expected one of {IOU_MODES}, got {mode!r}")
    R1, t1, s1 = (np.asarray(a, float) for a in (R1, t1, size1))
    R2, t2, s2 = (np.asarray(a, float) for a in (R2, t2, size2))
    M, G = len(R1), len(R2)
    if M == 0 or G == 0:
        return np.zeros((M, G))
    sym = np.zeros((M, G), bool) if symmetric is None else np.broadcast_to(np.asarray(symmetric, bool), (M, G))
    if mode == "nocs":
        # candidate 0 is R @ Ry(0) = R exactly, so non-symmetric pairs read column 0
        cand = y_symmetric_candidates(R1, n_steps) if sym.any() else R1[:, None]  # (M, n, 3, 3)
        corners = box_corners(s1)[:, None] @ np.swapaxes(cand, -1, -2) + t1[:, None, None, :]
        max1, min1 = _nocs_extents(corners)  # (M, n, 8)
        max2, min2 = _nocs_extents(box_corners_in_camera(R2, t2, s2))  # (G, 8)
        ious = _nocs_iou_from_extents(max1, min1, max2, min2)  # (M, n, G)
        best = np.maximum(ious.max(axis=1), 0.0)
        return np.where(sym, best, ious[:, 0])
    out = iou_3d_exact(R1, t1, s1, R2, t2, s2)
    mi, gi = np.nonzero(sym)
    if len(mi):
        cand = y_symmetric_candidates(R1[mi], n_steps)  # (P, n, 3, 3)
        if n_steps % 2 == 0:
            # a box is mapped onto itself by a half turn about its y axis, so steps i and i + n/2 give
            # the same box and the same exact IoU (not so in the legacy mode, where corner order matters)
            cand = cand[:, : n_steps // 2]
        n = cand.shape[1]
        rep = np.repeat(np.arange(len(mi)), n)
        vals = _exact_iou_pairs(cand.reshape(-1, 3, 3), t1[mi][rep], s1[mi][rep],
                                R2[gi][rep], t2[gi][rep], s2[gi][rep]).reshape(len(mi), n)
        out[mi, gi] = np.maximum(vals.max(axis=1), 0.0)
    return out
