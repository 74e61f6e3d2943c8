"""Readers for published 2D detections / segmentations and for SPD label pickles.

* DualPoseNet (Lin et al., ICCV 2021; Gorilla-Lab-SCUT/DualPoseNet), used by GPV-Pose / HS-Pose
  evaluation: ``segmentation_results/{REAL275,CAMERA25}/results_{test|val}_<scene>_<id>.pkl`` with
  ``pred_class_ids, pred_scores, pred_masks (H, W, M), pred_bboxes (M, 4) y1 x1 y2 x2`` (+ gt fields).
* SPD (Tian et al., ECCV 2020; mentian/object-deformnet): ``mrcnn_results/{val,real_test}/
  results_{val|test}_<scene>_<id>.pkl`` with ``class_ids, rois (y1 x1 y2 x2), scores, masks (H, W, M)``.
* SPD ``<id>_label.pkl`` (``preprocess/pose_data.py``): per-instance class ids, boxes, scales,
  rotations, translations, instance ids, model names.

Each reader returns an :class:`~demopose.data.frame_instances.Instances` (boxes as ``x1 y1 x2 y2`` pixels).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from demopose.data.frame_instances import Instances
from demopose.data.nocs_files import read_pickle

__all__ = [
    "SPDLabel",
    "detections_path",
    "read_dualposenet_segmentation",
    "read_spd_label",
    "read_spd_mrcnn",
]


def __getattr__(name: str) -> Any:
    if name == "Detections":  # deprecated alias, one release
        warnings.warn("demopose.data.detections.Detections is deprecated: use demopose.data.Instances "
                      "(keyword arguments)", DeprecationWarning, stacklevel=2)
        return _detections_record
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _detections_record(class_ids: np.ndarray, scores: np.ndarray, masks: np.ndarray, boxes: np.ndarray,
                       source: Path | None = None, meta: dict | None = None) -> Instances:
    """The former ``Detections(class_ids, scores, masks, boxes, source, meta)`` constructor."""
    return Instances(class_ids=class_ids, scores=scores, masks=masks, boxes=boxes, source=source, meta=meta or {})


def _as_dict(obj: object, path: Path) -> dict:
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict, got {type(obj).__name__}")
    return obj


def _detections(d: dict, path: Path, keys: tuple[str, str, str, str]) -> Instances:
    k_cls, k_score, k_mask, k_box = keys
    for k in keys:
        if k not in d:
            raise ValueError(f"{path}: key {k!r} missing (keys: {sorted(d)})")
    cls = np.asarray(d[k_cls], dtype=np.int64).reshape(-1)
    m = len(cls)
    scores = np.asarray(d[k_score], dtype=np.float64).reshape(-1)
    masks = np.asarray(d[k_mask])
    boxes = np.asarray(d[k_box], dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if scores.shape != (m,):
        raise ValueError(f"{path}: {k_score!r} has {scores.shape[0]} entries, {k_cls!r} has {m}")
    if boxes.shape != (m, 4):
        raise ValueError(f"{path}: {k_box!r} must have shape ({m}, 4), got {boxes.shape}")
    if masks.ndim == 2 and m == 0:
        masks = masks[..., None][..., :0]
    if masks.ndim != 3 or masks.shape[2] != m:
        raise ValueError(f"{path}: {k_mask!r} must have shape (H, W, {m}), got {masks.shape}")
    masks = np.ascontiguousarray(np.moveaxis(masks.astype(bool), 2, 0))
    y1, x1, y2, x2 = boxes.T
    meta = {k: v for k, v in d.items() if k not in keys}
    return Instances(class_ids=cls, scores=scores, masks=masks,
                     boxes=np.stack([x1, y1, x2, y2], axis=-1).reshape(m, 4), source=path, meta=meta)


def read_dualposenet_segmentation(path: str | os.PathLike) -> Instances:
    """Read a DualPoseNet ``segmentation_results`` pickle (boxes converted to x1 y1 x2 y2)."""
    p = Path(path)
    return _detections(_as_dict(read_pickle(p), p), p,
                       ("pred_class_ids", "pred_scores", "pred_masks", "pred_bboxes"))


def read_spd_mrcnn(path: str | os.PathLike) -> Instances:
    """Read an SPD ``mrcnn_results`` pickle (boxes converted to x1 y1 x2 y2)."""
    p = Path(path)
    return _detections(_as_dict(read_pickle(p), p), p, ("class_ids", "scores", "masks", "rois"))


def detections_path(root: str | os.PathLike, kind: str, split: str, scene: str, image_id: str,
                    source: str = "dualposenet") -> Path:
    """Where the published detections of a NOCS frame live (whether or not the file exists).

    Args:
        root: dataset root (the folder holding ``Real/`` and ``CAMERA/``).
        kind: ``"real"`` or ``"camera"``.
        split: ``"test"`` (REAL) or ``"val"`` (CAMERA).
        scene: ``scene_1`` or ``00000``.
        image_id: ``0000``.
        source: ``"dualposenet"`` (``segmentation_results``) or ``"spd"`` (``mrcnn_results``).
    """
    root = Path(root)
    stem = f"results_{'test' if kind == 'real' else 'val'}_{scene}_{image_id}.pkl"
    if source == "dualposenet":
        return root / "segmentation_results" / ("REAL275" if kind == "real" else "CAMERA25") / stem
    if source == "spd":
        return root / "mrcnn_results" / ("real_test" if kind == "real" else "val") / stem
    raise ValueError(f"source: expected 'dualposenet' or 'spd', got {source!r}")


@dataclass
class SPDLabel:
    """An SPD ``<id>_label.pkl``: per-instance annotations, N instances.

    Attributes:
        class_ids: ``(N,)`` 1-based ids; instance_ids: ``(N,)`` mask values; model_names: N names.
        boxes: ``(N, 4)`` x1 y1 x2 y2 pixels; scales: ``(N,)`` NOCS scale s (normalised -> metres).
        rotations: ``(N, 3, 3)``; translations: ``(N, 3)`` metres.
        handle_visible: ``(N,)`` bool or None; extra: other keys (``size``, ``poses``, ...).
    """

    class_ids: np.ndarray
    instance_ids: np.ndarray
    model_names: list[str]
    boxes: np.ndarray
    scales: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray
    handle_visible: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def read_spd_label(path: str | os.PathLike) -> SPDLabel:
    """Read and validate an SPD ``_label.pkl``."""
    p = Path(path)
    d = _as_dict(read_pickle(p), p)
    need = ("class_ids", "instance_ids", "model_list", "bboxes", "scales", "rotations", "translations")
    for k in need:
        if k not in d:
            raise ValueError(f"{p}: key {k!r} missing (keys: {sorted(d)})")
    cls = np.asarray(d["class_ids"], dtype=np.int64).reshape(-1)
    n = len(cls)
    arrays = {
        "instance_ids": (np.asarray(d["instance_ids"], dtype=np.int64).reshape(-1), (n,)),
        "bboxes": (np.asarray(d["bboxes"], dtype=np.float64).reshape(-1, 4), (n, 4)),
        "scales": (np.asarray(d["scales"], dtype=np.float64).reshape(-1), (n,)),
        "rotations": (np.asarray(d["rotations"], dtype=np.float64).reshape(-1, 3, 3), (n, 3, 3)),
        "translations": (np.asarray(d["translations"], dtype=np.float64).reshape(-1, 3), (n, 3)),
    }
    for k, (a, shape) in arrays.items():
        if a.shape != shape:
            raise ValueError(f"{p}: {k!r} must have shape {shape}, got {a.shape}")
    names = [str(x) for x in d["model_list"]]
    if len(names) != n:
        raise ValueError(f"{p}: 'model_list' has {len(names)} entries, 'class_ids' has {n}")
    y1, x1, y2, x2 = arrays["bboxes"][0].T
    hv = d.get("handle_visibility")
    hv = None if hv is None else np.asarray(hv).reshape(-1).astype(bool)
    extra = {k: v for k, v in d.items() if k not in need and k != "handle_visibility"}
    return SPDLabel(cls, arrays["instance_ids"][0], names, np.stack([x1, y1, x2, y2], -1).reshape(n, 4),
                    arrays["scales"][0], arrays["rotations"][0], arrays["translations"][0], hv, extra)
