"""Rotation and translation errors of the NOCS protocol (pairwise, predictions × ground truths).

Source: hughw19/NOCS_CVPR2019 ``utils.py`` ``compute_RT_degree_cm_symmetry``. The rotation error is
the geodesic angle ``arccos((tr(R1 R2ᵀ) − 1) / 2)``, or, for a y-symmetric ground truth (its category is
symmetric about y, or it is a mug whose handle is not visible), the angle between the two object
y axes. The translation error is ``‖t1 − t2‖`` in centimetres.

``clip=False`` reproduces the published code, which does not clip the arccos argument: rounding can
push it just outside [-1, 1] (typically for identical rotations) and the error becomes NaN. The
published matcher tests ``θ > threshold`` to *reject* a pair, and ``NaN > x`` is False, so a NaN error
counts as a hit at every threshold; when ordering candidates by ``θ + cm``, NaN sorts last. The
evaluator's ``nocs`` mode keeps both behaviours; its ``exact`` mode clips (``clip=True``).
"""

from __future__ import annotations

import numpy as np

from demopose.geometry import rotation_angle_deg, y_axis_angle_deg

__all__ = ["nearest_gt_errors", "pose_errors", "rotation_error_deg", "translation_error_cm"]


def rotation_error_deg(R1: np.ndarray, R2: np.ndarray, symmetric: np.ndarray | None = None,
                       clip: bool = True) -> np.ndarray:
    """Pairwise rotation error in degrees.

    Args:
        R1: ``(M, 3, 3)`` predicted rotations (object -> camera).
        R2: ``(G, 3, 3)`` ground-truth rotations.
        symmetric: ``(G,)`` or ``(M, G)`` bool; where True only the y axes are compared.
        clip: clamp the cosine into [-1, 1]; False reproduces the published NaN behaviour.

    Returns:
        ``(M, G)`` float64 degrees (NaN possible when ``clip`` is False).
    """
    R1 = np.asarray(R1, dtype=np.float64)[:, None]
    R2 = np.asarray(R2, dtype=np.float64)[None]
    with np.errstate(invalid="ignore"):
        full = rotation_angle_deg(*np.broadcast_arrays(R1, R2), clip=clip)
        if symmetric is None:
            return full
        yaxis = y_axis_angle_deg(*np.broadcast_arrays(R1, R2), clip=clip)
    return np.where(np.broadcast_to(np.asarray(symmetric, bool), full.shape), yaxis, full)


def translation_error_cm(t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """Pairwise ``‖t1 − t2‖ · 100``: ``t1 (M, 3)``, ``t2 (G, 3)`` in metres -> ``(M, G)`` centimetres."""
    t1 = np.asarray(t1, dtype=np.float64)
    t2 = np.asarray(t2, dtype=np.float64)
    return np.linalg.norm(t1[:, None] - t2[None], axis=-1) * 100


def pose_errors(R1: np.ndarray, t1: np.ndarray, R2: np.ndarray, t2: np.ndarray,
                symmetric: np.ndarray | None = None, clip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(rotation error (M, G) degrees, translation error (M, G) cm)``; see the two functions above."""
    return rotation_error_deg(R1, R2, symmetric, clip), translation_error_cm(t1, t2)


def nearest_gt_errors(poses, frame) -> list[dict | None]:
    """For every prediction of a :class:`~demopose.geometry.pose.PoseSet`, its errors against the nearest (by
    translation) ground-truth object of its class in ``frame`` (a :class:`~demopose.data.frame.Frame` with
    poses): ``{"gt_index", "rotation_deg", "translation_cm", "iou3d"}`` (exact 3D IoU; symmetric categories
    scored about their axis), or None when the frame has no object of that class."""
    from demopose.evaluation.iou import iou_3d

    gt = frame.ground_truth()
    out: list[dict | None] = []
    for i in range(len(poses)):
        same = np.nonzero(gt.class_ids == poses.class_ids[i])[0]
        if len(same) == 0:
            out.append(None)
            continue
        sym = np.array([frame.categories.is_y_symmetric(int(gt.class_ids[g]), bool(gt.handle_visible[g]))
                        for g in same]) if gt.handle_visible is not None else None
        r, t = pose_errors(poses.R[i:i + 1], poses.t[i:i + 1], gt.R[same], gt.t[same], sym)
        g = int(np.argmin(t[0]))
        iou = iou_3d(poses.R[i:i + 1], poses.t[i:i + 1], poses.size[i:i + 1], gt.R[same[g]:same[g] + 1],
                     gt.t[same[g]:same[g] + 1], gt.size[same[g]:same[g] + 1],
                     None if sym is None else sym[g:g + 1], mode="exact")
        out.append({"gt_index": int(same[g]), "rotation_deg": round(float(r[0, g]), 2),
                    "translation_cm": round(float(t[0, g]), 2), "iou3d": round(float(iou[0, 0]), 3)})
    return out
