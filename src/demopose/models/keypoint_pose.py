"""9-DoF poses of detections from their projected cuboid keypoints: PnP on the unit-diagonal cuboid, then
metric scale (the geometry is :mod:`demopose.geometry.pnp`; this module adds the category fallback).

Recipe (notes/monocular.md §3.4, §3.5):

1. object points: the 8 corners (NOCS order, :func:`demopose.geometry.box_corners`) of the box with the
   predicted relative extents ``d̂`` (``‖d̂‖ = 1``) and its centre;
2. :func:`~demopose.geometry.pnp.solve_cuboid_pnp`: ``cv2.solvePnP`` with ``SOLVEPNP_EPNP``, refined by
   ``SOLVEPNP_ITERATIVE`` from that guess, giving ``(R, t̂)`` up to the global scale ``λ`` (projection is
   invariant to scaling the scene about the camera);
3. ``λ`` from depth when available (:func:`~demopose.geometry.pnp.scale_from_depth`): the median over the
   object's pixels (inside the predicted 2D box, optionally a mask) of ``observed depth / depth of the λ = 1
   cuboid surface`` along the same pixel ray; otherwise ``λ`` = the category's mean metric diagonal
   (:meth:`CategoryTable.mean_sizes`);
4. ``t = λ·t̂``, ``size = λ·d̂``.
"""

from __future__ import annotations

import numpy as np

from demopose._checks import check_shape
from demopose.categories import CategoryTable
from demopose.geometry.pnp import scale_from_depth, solve_cuboid_pnp
from demopose.geometry.pose import PoseSet

__all__ = ["poses_from_keypoints"]


def poses_from_keypoints(keypoints: np.ndarray, rel_size: np.ndarray, class_ids: np.ndarray, scores: np.ndarray,
                         K: np.ndarray, categories: CategoryTable, boxes: np.ndarray | None = None,
                         depth: np.ndarray | None = None, masks: np.ndarray | None = None) -> PoseSet:
    """Metric poses of ``M`` detections.

    Args:
        keypoints: ``(M, 9, 2)`` original-image pixels. rel_size: ``(M, 3)`` unit-diagonal extents.
        class_ids: ``(M,)`` 1-based. scores: ``(M,)``. K: ``(3, 3)``.
        categories: mean sizes for the depth-free scale.
        boxes: ``(M, 4)`` predicted 2D boxes (needed with ``depth``). depth: ``(H, W)`` metres or None.
        masks: optional ``(M, H, W)`` bool object masks restricting the depth pixels.

    Returns:
        a :class:`PoseSet` of the detections whose PnP succeeded (``R`` object -> camera, ``t`` and
        ``size`` in metres).
    """
    keypoints = np.asarray(keypoints, np.float64)
    dims = check_shape(keypoints, "M 9 2", "keypoints")
    check_shape(np.asarray(rel_size), "M 3", "rel_size", dims)
    mean_diag = {c.id: float(np.linalg.norm(c.mean_size)) if c.mean_size is not None else 0.2 for c in categories}
    Rs, ts, sizes, keep = [], [], [], []
    for m in range(len(keypoints)):
        d = np.asarray(rel_size[m], np.float64)
        d = d / max(np.linalg.norm(d), 1e-9)
        res = solve_cuboid_pnp(keypoints[m], d, K)
        if not res.ok:
            continue
        lam = None
        if depth is not None and boxes is not None:
            lam = scale_from_depth(depth, boxes[m], res.R, res.t_unit, d, K, None if masks is None else masks[m])
        if lam is None or not np.isfinite(lam) or lam <= 0:
            lam = mean_diag.get(int(class_ids[m]), 0.2)
        Rs.append(res.R)
        ts.append(res.t_unit * lam)
        sizes.append(d * lam)
        keep.append(m)
    if not keep:
        return PoseSet.empty()
    k = np.asarray(keep)
    return PoseSet(np.asarray(class_ids)[k], np.stack(Rs), np.stack(ts), np.stack(sizes), np.asarray(scores)[k])
