"""Instance masks from 2D detections plus depth, for models that come without a segmentation network.

DeMo-Pose's depth branch needs a mask per object (the paper uses Mask R-CNN). When a frame only has
the monocular detector's boxes, :func:`masks_from_boxes` cuts each object out of the depth map:

1. the frame's dominant plane (the table) is found once by RANSAC on a subsample of the depth points
   and its points (within ``plane_tolerance``) are excluded, when it holds a large share of the points;
2. inside each box, the object's surface depth is the 30th percentile of the valid depths in the box's
   central region (the object is in front of the background the box also holds); pixels whose depth
   lies within ``±0.6 ·`` the category's mean box diagonal of it are kept;
3. boxes are processed by decreasing score, and a pixel belongs to the first object that claims it
   (front-to-back occlusion is left to the depth band).
"""

from __future__ import annotations

import numpy as np

from demopose.categories import CategoryTable
from demopose.data.frame import Frame

__all__ = ["masks_from_boxes", "support_plane"]


def support_plane(depth: np.ndarray, K: np.ndarray, tolerance: float = 0.01, iterations: int = 200,
                  samples: int = 4000, min_share: float = 0.25, seed: int = 0) -> np.ndarray | None:
    """The dominant plane of a depth map: ``(4,)`` ``[n, d]`` with ``n·p + d = 0`` (``|n| = 1``, metres), or
    None when the best plane holds less than ``min_share`` of the valid points."""
    flat = np.flatnonzero(depth > 0)  # row-major, as np.nonzero
    if len(flat) < 100:
        return None
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(flat), size=min(samples, len(flat)), replace=False)
    v, u = np.divmod(flat[pick], depth.shape[1])
    z = depth[v, u].astype(np.float64)
    P = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], -1)
    best, best_n = None, 0
    tri = rng.integers(0, len(P), size=(iterations, 3))
    a, b, c = P[tri[:, 0]], P[tri[:, 1]], P[tri[:, 2]]
    n = np.cross(b - a, c - a)
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-9
    n, a = n[ok] / norm[ok, None], a[ok]
    d = -(n * a).sum(1)
    counts = (np.abs(P @ n.T + d) < tolerance).sum(0)  # (iterations,)
    if len(counts):
        k = int(np.argmax(counts))
        best, best_n = np.concatenate([n[k], [d[k]]]), int(counts[k])
    if best is None or best_n < min_share * len(P):
        return None
    return best


def masks_from_boxes(frame: Frame, boxes: np.ndarray, class_ids: np.ndarray, scores: np.ndarray,
                     categories: CategoryTable, plane_tolerance: float = 0.01, min_pixels: int = 50
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Masks of detected objects from their boxes and the frame's depth (module docstring).

    Args:
        boxes: ``(M, 4)`` x1 y1 x2 y2 in the frame's pixels. class_ids: ``(M,)`` 1-based. scores: ``(M,)``.
        categories: mean sizes for the depth band (0.25 m diagonal where unknown).
        min_pixels: masks with fewer pixels are dropped.

    Returns:
        ``masks (M', H, W)`` bool and ``keep (M',)`` indices into the detections.
    """
    depth = frame.depth
    H, W = depth.shape
    K = frame.K
    plane = support_plane(depth, K, plane_tolerance)

    def usable(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Valid depth off the support plane, in one box (only boxes are ever looked at)."""
        z = depth[r0:r1, c0:c1]
        valid = z > 0
        if plane is not None:
            vv, uu = np.mgrid[r0:r1, c0:c1]
            dist = np.abs(plane[0] * (uu - K[0, 2]) * z / K[0, 0] + plane[1] * (vv - K[1, 2]) * z / K[1, 1]
                          + plane[2] * z + plane[3])
            valid &= dist > plane_tolerance
        return valid

    taken = np.zeros((H, W), bool)
    masks, keep = [], []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        x1, y1, x2, y2 = np.asarray(boxes[i], np.float64)
        c0, r0 = int(max(0, np.floor(x1))), int(max(0, np.floor(y1)))
        c1, r1 = int(min(W, np.ceil(x2) + 1)), int(min(H, np.ceil(y2) + 1))
        if c1 - c0 < 2 or r1 - r0 < 2:
            continue
        box_valid = usable(r0, r1, c0, c1) & ~taken[r0:r1, c0:c1]
        if box_valid.sum() < min_pixels:
            continue
        bh, bw = r1 - r0, c1 - c0
        centre = box_valid[int(bh * 0.3): int(bh * 0.7) + 1, int(bw * 0.3): int(bw * 0.7) + 1]
        zc = depth[r0:r1, c0:c1][int(bh * 0.3): int(bh * 0.7) + 1, int(bw * 0.3): int(bw * 0.7) + 1][centre]
        if len(zc) < 5:
            zc = depth[r0:r1, c0:c1][box_valid]
        z_surf = float(np.percentile(zc, 30))  # the object is in front of whatever else the box holds
        diag = 0.25
        if int(class_ids[i]) in categories and categories[int(class_ids[i])].mean_size is not None:
            diag = float(np.linalg.norm(categories[int(class_ids[i])].mean_size))
        band = np.abs(depth[r0:r1, c0:c1] - z_surf) <= 0.6 * diag
        in_box = box_valid & band
        if in_box.sum() < min_pixels:
            continue
        m = np.zeros((H, W), bool)
        m[r0:r1, c0:c1] = in_box
        taken[r0:r1, c0:c1] |= in_box
        masks.append(m)
        keep.append(int(i))
    if not masks:
        return np.zeros((0, H, W), bool), np.zeros(0, np.int64)
    return np.stack(masks), np.asarray(keep, np.int64)
