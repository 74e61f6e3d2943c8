"""The pose record (R, t, size) and the one place that converts to and from the NOCS ``sRT`` form.

Convention:
    A 9-DoF pose maps object-frame points (NOCS canonical frame: centred on the tight box, y up) to the
    OpenCV camera frame in metres: ``x_cam = R @ x_obj + t``. ``size`` is the metric extent of the tight
    box along the object's x, y, z axes.

    The NOCS files store ``RT`` (4×4) = ``[s·R | t]`` with ``s`` the metric box diagonal, together with
    ``scales`` = ``size / ‖size‖`` (diagonal 1). GPV-Pose writes ``RT = [R | t]`` with ``scales`` = the
    metric size. Both give the same box; :func:`pose_from_nocs` reads either, because it takes the
    scale from ``cbrt(det(RT[:3, :3]))`` exactly as the NOCS evaluation code does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from demopose._checks import check_finite, check_shape

__all__ = ["Pose", "PoseSet", "pose_from_nocs", "pose_to_nocs", "pose_to_matrix"]


@dataclass
class Pose:
    """One object's 9-DoF pose.

    Attributes:
        R: ``(3, 3)`` rotation, object -> camera (det +1).
        t: ``(3,)`` translation of the box centre in the camera frame, metres.
        size: ``(3,)`` metric extents along the object x, y, z axes, metres.
        class_id: category id in the dataset's category table (0 = unknown / background).
        score: detection confidence in [0, 1].
    """

    R: np.ndarray
    t: np.ndarray
    size: np.ndarray
    class_id: int = 0
    score: float = 1.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.R = np.asarray(self.R, dtype=np.float64)
        self.t = np.asarray(self.t, dtype=np.float64).reshape(-1)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(-1)
        check_shape(self.R, "3 3", "Pose.R")
        check_shape(self.t, "3", "Pose.t")
        check_shape(self.size, "3", "Pose.size")

    @property
    def scale(self) -> float:
        """The metric box diagonal ``‖size‖`` (the NOCS ``s``), metres."""
        return float(np.linalg.norm(self.size))

    def matrix(self) -> np.ndarray:
        """``(4, 4)`` rigid transform ``[R | t]`` (no scale)."""
        return pose_to_matrix(self.R, self.t)

    def to_nocs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(RT (4, 4) = [s·R | t], scales (3,))`` in the NOCS file convention."""
        return pose_to_nocs(self.R, self.t, self.size)

    @classmethod
    def from_nocs(cls, RT: np.ndarray, scales: np.ndarray, class_id: int = 0, score: float = 1.0) -> Pose:
        """Build from a NOCS/GPV ``RT (4, 4)`` and ``scales (3,)`` (see module docstring)."""
        R, t, size = pose_from_nocs(RT, scales)
        return cls(R=R, t=t, size=size, class_id=class_id, score=score)

    def to_dict(self) -> dict:
        """JSON-friendly dict: R as nested lists, t and size in metres."""
        return {"class_id": int(self.class_id), "score": float(self.score), "R": self.R.tolist(),
                "t": self.t.tolist(), "size": self.size.tolist()}


def pose_to_matrix(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Stack ``R (*, 3, 3)`` and ``t (*, 3)`` into homogeneous transforms ``(*, 4, 4)``."""
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    M = np.zeros(R.shape[:-2] + (4, 4))
    M[..., :3, :3] = R
    M[..., :3, 3] = t
    M[..., 3, 3] = 1.0
    return M


def pose_to_nocs(R: np.ndarray, t: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metric pose -> NOCS ``(RT (*, 4, 4) = [s·R | t], scales (*, 3))`` with ``s = ‖size‖``."""
    size = np.asarray(size, dtype=np.float64)
    s = np.linalg.norm(size, axis=-1)
    RT = pose_to_matrix(np.asarray(R, dtype=np.float64) * s[..., None, None], t)
    return RT, size / s[..., None]


def pose_from_nocs(RT: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NOCS or GPV ``RT (*, 4, 4)`` + ``scales (*, 3)`` -> ``R (*, 3, 3), t (*, 3), size (*, 3)`` metres.

    The scale factor is ``cbrt(det(RT[:3, :3]))`` (1 for GPV files, the metric diagonal for NOCS
    files), so ``size = scales · s`` is right for both conventions.

    Raises:
        ValueError: wrong shapes, non-finite values, or a singular/left-handed ``RT``.
    """
    RT = np.asarray(RT, dtype=np.float64)
    scales = np.asarray(scales, dtype=np.float64)
    check_shape(RT, "* 4 4", "RT")
    check_shape(scales, "* 3", "scales")
    check_finite(RT, "RT")
    det = np.linalg.det(RT[..., :3, :3])
    if np.any(det <= 0):
        raise ValueError("RT: the 3×3 block must have a positive determinant (a scaled rotation)")
    s = np.cbrt(det)
    R = RT[..., :3, :3] / s[..., None, None]
    return R, RT[..., :3, 3].copy(), scales * s[..., None]


@dataclass
class PoseSet:
    """The poses of several objects in one frame, as arrays (predictions or ground truth).

    Attributes:
        class_ids: ``(N,)`` int64 category ids (1-based, see :mod:`demopose.categories`).
        R: ``(N, 3, 3)`` rotations, object -> camera.
        t: ``(N, 3)`` translations, metres.
        size: ``(N, 3)`` metric extents, metres.
        scores: ``(N,)`` confidences (1 for ground truth).
        handle_visible: ``(N,)`` bool, mug-handle visibility (True where unknown or not a mug).
    """

    class_ids: np.ndarray
    R: np.ndarray
    t: np.ndarray
    size: np.ndarray
    scores: np.ndarray | None = None
    handle_visible: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        n = len(self.class_ids)
        self.R = np.asarray(self.R, dtype=np.float64).reshape(n, 3, 3)
        self.t = np.asarray(self.t, dtype=np.float64).reshape(n, 3)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(n, 3)
        self.scores = (np.ones(n) if self.scores is None
                       else np.asarray(self.scores, dtype=np.float64).reshape(n))
        self.handle_visible = (np.ones(n, dtype=bool) if self.handle_visible is None
                               else np.asarray(self.handle_visible).reshape(n).astype(bool))

    def __len__(self) -> int:
        return len(self.class_ids)

    @classmethod
    def empty(cls) -> PoseSet:
        return cls(np.zeros(0, np.int64), np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros((0, 3)))

    @classmethod
    def from_poses(cls, poses: list[Pose], handle_visible: np.ndarray | None = None) -> PoseSet:
        """Stack a list of :class:`Pose` records."""
        if not poses:
            return cls.empty()
        return cls(np.array([p.class_id for p in poses]), np.stack([p.R for p in poses]),
                   np.stack([p.t for p in poses]), np.stack([p.size for p in poses]),
                   np.array([p.score for p in poses]), handle_visible)

    def poses(self) -> list[Pose]:
        """Split into a list of :class:`Pose` records."""
        return [Pose(self.R[i], self.t[i], self.size[i], int(self.class_ids[i]), float(self.scores[i]))
                for i in range(len(self))]

    def select(self, index: np.ndarray) -> PoseSet:
        """Subset by boolean mask or integer index ``(N,)``."""
        return PoseSet(self.class_ids[index], self.R[index], self.t[index], self.size[index],
                       self.scores[index], self.handle_visible[index])
