"""The product API: RGB-D frame in, every object's class, score, rotation, translation and size out.

    from demopose import Predictor

    predictor = Predictor.from_checkpoint()            # the bundled DeMo-Pose (small, synthetic data)
    for obj in predictor.predict(rgb, depth, K):       # rgb (H, W, 3) uint8, depth (H, W) metres, K (3, 3)
        print(obj.class_name, obj.score, obj.R, obj.t, obj.size)

With a DeMo-Pose checkpoint and no masks, the objects come from the model's own monocular detector
and their masks from the depth inside each box (:mod:`demopose.engine.masks`); pass ``masks`` and
``class_ids`` (e.g. from your segmentation network) to use yours. A depth-only model (``gpv``) needs
them; a monocular model (``mono``) needs none.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from demopose.categories import CategoryTable
from demopose.data.frame import Frame
from demopose.data.instances import N_POINTS
from demopose.engine.inference import FrameInstances, predict_frame
from demopose.geometry.camera import Intrinsics
from demopose.geometry.pose import PoseSet
from demopose.io import cache_dir, write_json_atomic

__all__ = ["BUNDLED_CHECKPOINT", "ObjectPose", "Predictor", "validate_inputs"]

log = logging.getLogger(__name__)

BUNDLED_CHECKPOINT = Path(__file__).parent / "assets" / "demopose_synth_small.pt"
"""DeMo-Pose (``demopose_small``) trained on this project's synthetic data (docs/checkpoints.md)."""


@dataclass
class ObjectPose:
    """One estimated object.

    Attributes:
        class_id: 1-based category id; class_name: its name.
        score: detection confidence (1 for given masks).
        R: ``(3, 3)`` object -> camera rotation. t: ``(3,)`` box centre in the camera frame, metres.
        size: ``(3,)`` box extents along the object's x, y, z, metres.
        box: ``(4,)`` 2D box x1 y1 x2 y2 (pixels) of the instance mask, or None.
    """

    class_id: int
    class_name: str
    score: float
    R: np.ndarray
    t: np.ndarray
    size: np.ndarray
    box: np.ndarray | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (lists, metres)."""
        return {"class_id": self.class_id, "class_name": self.class_name, "score": round(float(self.score), 4),
                "R": np.round(self.R, 6).tolist(), "t": np.round(self.t, 6).tolist(),
                "size": np.round(self.size, 6).tolist(),
                "box": None if self.box is None else np.round(self.box, 1).tolist()}


def validate_inputs(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, source: str = "input",
                    depth_scale: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check and normalise a frame: ``rgb (H, W, 3)`` uint8, ``depth (H, W)`` -> metres, ``K (3, 3)``.

    Args:
        depth_scale: metres per depth unit for integer depth (e.g. 0.001 for millimetre PNGs). Float depth
            is taken as metres; integer depth without a scale is an error.
        source: names the input in error messages (a file or folder).

    Raises:
        ValueError: with the field and what was expected.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{source}: rgb must be (H, W, 3), got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        if np.issubdtype(rgb.dtype, np.floating) and rgb.size and float(np.nanmax(rgb)) <= 1.0:
            rgb = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
        else:
            raise ValueError(f"{source}: rgb must be uint8 (0-255) or float in [0, 1], got {rgb.dtype}")
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.shape != rgb.shape[:2]:
        raise ValueError(f"{source}: depth shape {depth.shape} differs from the colour image's {rgb.shape[:2]} "
                         f"(depth must be registered to the colour camera)")
    if np.issubdtype(depth.dtype, np.integer):
        if depth_scale is None:
            raise ValueError(f"{source}: depth is integer ({depth.dtype}); give depth_scale (metres per unit, "
                             f"e.g. 0.001 for millimetres) or pass depth in metres as float")
        depth = depth.astype(np.float32) * float(depth_scale)
    else:
        depth = depth.astype(np.float32) * (float(depth_scale) if depth_scale is not None else 1.0)
    depth = np.where(np.isfinite(depth), depth, 0).astype(np.float32)
    valid = depth[depth > 0]
    if valid.size == 0:
        raise ValueError(f"{source}: depth has no valid (> 0) pixel")
    med = float(np.median(valid))
    if med > 20.0:
        raise ValueError(f"{source}: median depth {med:.1f} m is implausible: the depth looks like millimetres; "
                         f"set depth_scale=0.001 (camera.json: \"depth_scale\": 0.001)")
    if med < 0.05:
        raise ValueError(f"{source}: median depth {med:.4f} m is implausible (depth_scale too small?)")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"{source}: K must be (3, 3), got shape {K.shape}")
    H, W = depth.shape
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if not (fx > 0 and fy > 0):
        raise ValueError(f"{source}: K focal lengths must be positive pixels, got fx={fx}, fy={fy}")
    if not (0 <= cx <= W and 0 <= cy <= H):
        raise ValueError(f"{source}: K principal point ({cx:.1f}, {cy:.1f}) lies outside the {W}x{H} image "
                         f"(intrinsics for another resolution?)")
    if not 0.2 < fx / W < 5:
        raise ValueError(f"{source}: K fx = {fx:.1f} px for a {W} px wide image is implausible (expected "
                         f"{0.2 * W:.0f}-{5 * W:.0f}); intrinsics for another resolution?")
    return rgb, depth, K


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cache_entry_valid(done: Path) -> bool:
    """Whether an ONNX cache entry is complete and intact: its ``.done`` marker (JSON, written last) lists every
    exported file with its SHA-256, and each file is there with that hash. A truncated, damaged or swapped file
    (or a marker of an older format, which holds no hashes) makes the entry invalid, so it is exported again."""
    import json

    try:
        doc = json.loads(done.read_text())
        files = doc["files"]
        return bool(files) and all(Path(f["path"]).is_file() and _file_sha256(Path(f["path"])) == f["sha256"]
                                   for f in files)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _exported(checkpoint: Path) -> Path:
    """The ONNX export of a checkpoint in the cache (exported on first use, keyed by the file's content; the
    entry is verified against the hashes in its marker at every use and exported again when it is damaged)."""
    import hashlib

    from demopose.export.onnx_export import export_checkpoint

    digest = hashlib.sha1(checkpoint.read_bytes()).hexdigest()[:12]
    target = cache_dir("onnx") / f"{checkpoint.stem}-{digest}.onnx"
    done = target.with_suffix(".done")
    if not _cache_entry_valid(done):  # the marker is written last: an interrupted export is redone
        if done.exists():
            log.warning("ONNX cache entry %s is incomplete or damaged (a file is missing or its hash differs); "
                        "exporting %s again", target, checkpoint)
            done.unlink()
        log.info("exporting %s to ONNX (once) -> %s", checkpoint, target)
        paths = export_checkpoint(checkpoint, target)
        write_json_atomic(done, {"checkpoint": str(checkpoint), "files": [
            {"path": str(v), "sha256": _file_sha256(Path(v))} for v in paths.values()]})
    return target  # the file, or a DeMo-Pose pair's base path (load_ort_model takes either)


class Predictor:
    """Estimate the 9-DoF poses of the objects in RGB-D frames.

    Args:
        model: a DeMo-Pose, GPV-family, CleanPose or monocular model (eval mode is set here).
        device: torch device.
        score_threshold: detections below it are dropped (detector-driven masks only).
        n_points: points sampled per instance.
        seed: point-sampling seed (results are deterministic for a given seed).
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", score_threshold: float = 0.3,
                 n_points: int = N_POINTS, seed: int = 0) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.score_threshold = float(score_threshold)
        self.n_points = int(n_points)
        self.seed = int(seed)
        self.categories: CategoryTable = self._categories()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, backend: str = "torch",
                        threads: int | None = None, **kwargs) -> Predictor:
        """Load a model; ``path`` None: the bundled DeMo-Pose.

        Args:
            path: a checkpoint (``.pt``, :func:`demopose.engine.checkpoint.load_model`) or, with the
                ``onnxruntime`` backend, an exported model (``demopose export``; a DeMo-Pose export is its
                base path ``x.onnx`` or either of ``x.mono.onnx`` / ``x.pose.onnx``).
            backend: ``torch`` or ``onnxruntime`` (same API and outputs; a ``.pt`` is exported once to
                ``$DEMOPOSE_CACHE/onnx``, default ``~/.cache/demopose/onnx``).
            threads: onnxruntime intra-op threads (torch: use ``torch.set_num_threads``).
        """
        p = Path(path) if path is not None else BUNDLED_CHECKPOINT
        if not p.exists() and not (backend != "torch" and p.suffix == ".onnx"):
            raise FileNotFoundError(f"{p}: model file not found" +
                                    (" (the bundled checkpoint is missing from this installation)"
                                     if path is None else ""))
        if backend == "torch":
            from demopose.engine.checkpoint import load_model

            return cls(load_model(p, map_location=kwargs.get("device", "cpu")), **kwargs)
        if backend not in ("onnxruntime", "ort"):
            raise ValueError(f"backend: expected 'torch' or 'onnxruntime', got {backend!r}")
        if kwargs.get("device", "cpu") != "cpu":
            raise ValueError("backend onnxruntime: runs on the CPU here (device='cpu')")
        from demopose.export.ort_backend import load_ort_model

        if p.suffix == ".pt":
            p = _exported(p)
        return cls(load_ort_model(p, threads=threads), **kwargs)

    def _categories(self) -> CategoryTable:
        m = self.model
        for attr in ("categories", "table"):
            t = getattr(m, attr, None)
            if isinstance(t, CategoryTable):
                return t
        pose = getattr(m, "pose", None)
        if pose is not None and isinstance(getattr(pose, "table", None), CategoryTable):
            return pose.table
        raise TypeError(f"Predictor: cannot tell the categories of a {type(m).__name__}")

    @property
    def detector(self):
        """The model's monocular detector (the model itself for ``mono``), or None."""
        if callable(getattr(self.model, "detect_frame", None)):
            return self.model
        mono = getattr(self.model, "mono", None)
        return mono if callable(getattr(mono, "detect_frame", None)) else None

    # ------------------------------------------------------------------------------------------
    def make_frame(self, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, depth_scale: float | None = None,
                   source: str = "input") -> Frame:
        """A :class:`Frame` without annotations from validated inputs (:func:`validate_inputs`)."""
        rgb, depth, K = validate_inputs(rgb, depth, K, source, depth_scale)
        H, W = depth.shape
        return Frame(rgb=rgb, depth=depth, intrinsics=Intrinsics.from_matrix(K, W, H),
                     instance_map=np.zeros((H, W), np.int32), instance_ids=np.zeros(0, np.int64),
                     class_ids=np.zeros(0, np.int64), categories=self.categories, frame_id=source)

    def detect(self, frame: Frame):
        """The detector's objects in ``frame`` with score >= ``score_threshold`` (a
        :class:`~demopose.models.mono.FrameDetections`)."""
        from demopose.models.mono import FrameDetections

        det_model = self.detector
        if det_model is None:
            raise ValueError(f"{type(self.model).__name__} has no detector: pass masks and class_ids")
        det = det_model.detect_frame(frame, device=self.device)
        keep = det.scores >= self.score_threshold
        return FrameDetections(boxes=det.boxes[keep], class_ids=det.class_ids[keep], scores=det.scores[keep],
                               keypoints=det.keypoints[keep], rel_size=det.rel_size[keep], features=det.features)

    def masks_for(self, frame: Frame, det) -> FrameInstances:
        """Instances of detections (``boxes``, ``class_ids``, ``scores``) with masks cut from the depth
        (:func:`demopose.engine.masks.masks_from_boxes`)."""
        from demopose.engine.masks import masks_from_boxes

        cls, scores = det.class_ids, det.scores
        masks, k = masks_from_boxes(frame, det.boxes, cls, scores, self.categories, min_pixels=50)
        return FrameInstances(masks, cls[k].astype(np.int64), scores[k].astype(np.float64), np.full(len(k), -1))

    def instances(self, frame: Frame) -> FrameInstances:
        """Objects and masks found by the model's detector (score >= ``score_threshold``) plus depth."""
        return self.masks_for(frame, self.detect(frame))

    def predict_frame(self, frame: Frame, instances: FrameInstances | None = None) -> tuple[PoseSet, FrameInstances]:
        """Poses of a :class:`Frame` (with ``instances``, or the detector's) and the instances used."""
        if self.detector is self.model:  # the monocular model estimates poses itself
            poses = self.model.poses_from_detections(frame, self.detect(frame))
            H, W = frame.depth.shape
            return poses, FrameInstances(np.zeros((len(poses), H, W), bool), poses.class_ids, poses.scores,
                                         np.full(len(poses), -1))
        features = None
        if instances is None:
            det = self.detect(frame)
            instances, features = self.masks_for(frame, det), det.features  # the fusion reuses the detector's maps
        if len(instances.class_ids) == 0:
            return PoseSet.empty(), instances
        poses, kept = predict_frame(self.model, frame, instances, self.n_points, self.seed, self.device, features)
        return poses, FrameInstances(instances.masks[kept], instances.class_ids[kept], instances.scores[kept],
                                     instances.gt_index[kept])

    def predict(self, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, masks: np.ndarray | None = None,
                class_ids: np.ndarray | None = None, scores: np.ndarray | None = None,
                depth_scale: float | None = None) -> list[ObjectPose]:
        """Estimate every object's pose.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB. depth: ``(H, W)`` metres (float) or integer with ``depth_scale``.
            K: ``(3, 3)`` intrinsics of the colour camera (depth registered to it).
            masks: optional ``(M, H, W)`` bool instance masks, with ``class_ids (M,)`` 1-based (and optional
                ``scores``); default: the model's detector plus depth.

        Returns:
            one :class:`ObjectPose` per object, by decreasing score.
        """
        frame = self.make_frame(rgb, depth, K, depth_scale)
        inst = None
        if masks is not None:
            masks = np.asarray(masks, bool)
            if masks.ndim == 2:
                masks = masks[None]
            if masks.shape[1:] != frame.depth.shape:
                raise ValueError(f"masks: expected (M, {frame.height}, {frame.width}), got {masks.shape}")
            if class_ids is None:
                raise ValueError("masks: class_ids (M,) are required with masks (1-based category ids)")
            class_ids = np.asarray(class_ids, np.int64).reshape(-1)
            if len(class_ids) != len(masks):
                raise ValueError(f"class_ids: expected {len(masks)} ids (one per mask), got {len(class_ids)}")
            bad = [int(c) for c in class_ids if int(c) not in self.categories]
            if bad:
                raise ValueError(f"class_ids: {bad} are not categories of {self.categories.name} "
                                 f"({[(c.id, c.name) for c in self.categories]})")
            sc = np.ones(len(masks)) if scores is None else np.asarray(scores, np.float64).reshape(-1)
            inst = FrameInstances(masks, class_ids, sc, np.full(len(masks), -1))
        return self.objects(*self.predict_frame(frame, inst))

    def objects(self, poses: PoseSet, inst: FrameInstances) -> list[ObjectPose]:
        """:meth:`predict_frame`'s output as :class:`ObjectPose` objects, by decreasing score (each with its
        mask's 2D box)."""
        out = []
        for i in np.argsort(-poses.scores, kind="stable"):
            c = int(poses.class_ids[i])
            m = inst.masks[i] if i < len(inst.masks) else None
            box = None
            if m is not None and m.any():
                v, u = np.nonzero(m)
                box = np.array([u.min(), v.min(), u.max(), v.max()], np.float64)
            out.append(ObjectPose(c, self.categories[c].name, float(poses.scores[i]), poses.R[i], poses.t[i],
                                  poses.size[i], box))
        return out
