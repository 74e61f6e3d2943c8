"""Read and write NOCS-format results pickles (one frame per file), the exchange format of the field.

Keys (notes/depth_and_eval.md §5.7; written by NOCS, SPD, DualPoseNet + GPV-Pose / HS-Pose):

=========================  ============  =======================================================
key                        shape         meaning
=========================  ============  =======================================================
``image_path``             str           the frame (any string)
``gt_class_ids``           (G,) int      category ids, 1-based
``gt_RTs``                 (G, 4, 4)     ground-truth poses (see conventions)
``gt_scales``              (G, 3)        ground-truth box scales (see conventions)
``gt_handle_visibility``   (G,)          1 = mug handle visible (or not a mug), 0 = not visible
``pred_class_ids``         (M,) int      predicted category ids
``pred_bboxes``            (M, 4) int    2D boxes ``y1 x1 y2 x2`` (pixels; not used by the metric)
``pred_scores``            (M,) float    confidences
``pred_RTs``               (M, 4, 4)     predicted poses
``pred_scales``            (M, 3)        predicted box scales
=========================  ============  =======================================================

Conventions: ``nocs`` (NOCS, SPD): ``RT = [s·R | t]`` with ``scales = size / ‖size‖`` and ``s = ‖size‖``;
``gpv`` (GPV-Pose, HS-Pose): ``RT = [R | t]`` with ``scales`` = metric size. Both describe the same box
and are read the same way through :func:`demopose.geometry.pose_from_nocs`; metres throughout.

The published evaluation code rejects an all-zero ``pred_bboxes`` row, so when no 2D boxes are given
the writer stores the placeholder ``(0, 0, 1, 1)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from demopose.geometry import PoseSet, pose_from_nocs, pose_to_matrix, pose_to_nocs
from demopose.io import read_pickle, write_pickle_atomic

__all__ = ["CONVENTIONS", "RESULT_KEYS", "FrameResult", "find_results", "frame_from_dict", "frame_to_dict",
           "iter_results", "read_results_pkl", "write_results_pkl"]

RESULT_KEYS = ("image_path", "gt_class_ids", "gt_RTs", "gt_scales", "gt_handle_visibility",
               "pred_class_ids", "pred_bboxes", "pred_scores", "pred_RTs", "pred_scales")
"""Keys every results pickle must hold."""

CONVENTIONS = ("nocs", "gpv")


@dataclass
class FrameResult:
    """One frame's predictions and ground truth.

    Attributes:
        image_path: identifies the frame.
        pred: predicted poses with scores (``PoseSet``, metres).
        gt: ground-truth poses with ``handle_visible``.
        pred_bboxes: ``(M, 4)`` int 2D boxes ``y1 x1 y2 x2`` or None.
        extra: any other keys of the pickle, untouched.
    """

    image_path: str
    pred: PoseSet
    gt: PoseSet
    pred_bboxes: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _array(d: dict, key: str, source: str, shape: tuple[int | None, ...], dtype: type) -> np.ndarray:
    if key not in d:
        raise ValueError(f"{source}: missing key {key!r} (a NOCS results pickle needs {', '.join(RESULT_KEYS)})")
    try:
        a = np.asarray(d[key], dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: key {key!r}: cannot be read as a {dtype.__name__} array ({e})") from None
    if a.size == 0:
        return np.zeros(tuple(0 if s is None else s for s in shape), dtype)
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{source}: key {key!r}: expected shape {want}, got {a.shape}")
    if dtype is float and not np.all(np.isfinite(a)):
        raise ValueError(f"{source}: key {key!r}: contains NaN or infinite values")
    return a


def _poses(d: dict, prefix: str, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ids = _array(d, f"{prefix}_class_ids", source, (None,), np.int64)
    RT = _array(d, f"{prefix}_RTs", source, (None, 4, 4), float)
    scales = _array(d, f"{prefix}_scales", source, (None, 3), float)
    for key, a in ((f"{prefix}_RTs", RT), (f"{prefix}_scales", scales)):
        if len(a) != len(ids):
            raise ValueError(f"{source}: key {key!r}: {len(a)} entries but {prefix}_class_ids has {len(ids)}")
    if len(ids) == 0:
        return ids, np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros((0, 3))
    try:
        R, t, size = pose_from_nocs(RT, scales)
    except ValueError as e:
        raise ValueError(f"{source}: key {prefix + '_RTs'!r}: {e}") from None
    return ids, R, t, size


def frame_from_dict(d: dict, source: str = "<dict>") -> FrameResult:
    """Validate a results dict and convert it (either convention) to a :class:`FrameResult`.

    Raises:
        ValueError: a missing key, a wrong shape or count, or a NaN / degenerate pose; the message names
            ``source`` and the key.
    """
    if not isinstance(d, dict):
        raise ValueError(f"{source}: expected a dict of NOCS result keys, got {type(d).__name__}")
    gid, gR, gt_, gs = _poses(d, "gt", source)
    hv = _array(d, "gt_handle_visibility", source, (None,), float)
    if len(hv) != len(gid):
        raise ValueError(f"{source}: key 'gt_handle_visibility': {len(hv)} entries but gt_class_ids has {len(gid)}")
    pid, pR, pt, ps = _poses(d, "pred", source)
    scores = _array(d, "pred_scores", source, (None,), float)
    boxes = _array(d, "pred_bboxes", source, (None, 4), float)
    for key, a in (("pred_scores", scores), ("pred_bboxes", boxes)):
        if len(a) != len(pid):
            raise ValueError(f"{source}: key {key!r}: {len(a)} entries but pred_class_ids has {len(pid)}")
    if "image_path" not in d:
        raise ValueError(f"{source}: missing key 'image_path'")
    extra = {k: v for k, v in d.items() if k not in RESULT_KEYS}
    return FrameResult(str(d["image_path"]), PoseSet(pid, pR, pt, ps, scores),
                       PoseSet(gid, gR, gt_, gs, None, hv != 0), boxes.astype(np.int64), extra)


def frame_to_dict(frame: FrameResult, convention: str = "nocs") -> dict:
    """A :class:`FrameResult` as a NOCS results dict in the ``nocs`` or ``gpv`` convention."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")

    def rts(p: PoseSet) -> tuple[np.ndarray, np.ndarray]:
        if convention == "nocs":
            return pose_to_nocs(p.R, p.t, p.size)
        return pose_to_matrix(p.R, p.t), p.size.copy()

    gRT, gsc = rts(frame.gt)
    pRT, psc = rts(frame.pred)
    M = len(frame.pred)
    boxes = np.tile(np.array([0, 0, 1, 1], np.int32), (M, 1)) if frame.pred_bboxes is None else \
        np.asarray(frame.pred_bboxes, np.int32).reshape(M, 4)
    out = dict(frame.extra)
    out.update({
        "image_path": frame.image_path,
        "gt_class_ids": frame.gt.class_ids.astype(np.int64),
        "gt_RTs": gRT.reshape(-1, 4, 4),
        "gt_scales": gsc.reshape(-1, 3),
        "gt_handle_visibility": frame.gt.handle_visible.astype(np.int64),
        "pred_class_ids": frame.pred.class_ids.astype(np.int64),
        "pred_bboxes": boxes,
        "pred_scores": frame.pred.scores.astype(np.float64),
        "pred_RTs": pRT.reshape(-1, 4, 4),
        "pred_scales": psc.reshape(-1, 3),
    })
    return out


def write_results_pkl(path: str | os.PathLike, frame: FrameResult, convention: str = "nocs") -> None:
    """Write one frame's results pickle atomically (see :func:`frame_to_dict`)."""
    write_pickle_atomic(path, frame_to_dict(frame, convention))


def read_results_pkl(path: str | os.PathLike) -> list[FrameResult]:
    """Read a results pickle: one frame (a dict) or several (a list of dicts, as GPV-Pose writes).

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable pickle, a type outside the allow-list of
        :func:`demopose.io.read_pickle` (nothing of the file runs), or invalid content (names the file, the
        frame index for lists, and the key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: results pickle not found")
    obj = read_pickle(path)  # allow-list: NumPy arrays and plain values only (a payload is refused, not run)
    if isinstance(obj, list | tuple):
        return [frame_from_dict(d, f"{path}[{i}]") for i, d in enumerate(obj)]
    return [frame_from_dict(obj, str(path))]


def find_results(root: str | os.PathLike) -> list[Path]:
    """The ``*.pkl`` files of a results folder (recursively, sorted), or ``[root]`` for a file."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results folder or file")
    files = sorted(p for p in root.rglob("*.pkl") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{root}: no *.pkl results files found")
    return files


def iter_results(root: str | os.PathLike) -> Iterator[FrameResult]:
    """Yield every frame of a results folder or file (see :func:`find_results`)."""
    for p in find_results(root):
        yield from read_results_pkl(p)
