"""The product API: RGB-D frame in, every object's class, score, rotation, translation and size out.

    from demopose import Predictor

    predictor = Predictor.from_checkpoint()            # the bundled DeMo-Pose (small, synthetic data)
    for obj in predictor.predict(rgb, depth, K):       # rgb (H, W, 3) uint8, depth (H, W) metres, K (3, 3)
        print(obj.class_name, obj.score, obj.R, obj.t, obj.size)

With a DeMo-Pose checkpoint and no masks, the objects come from the model's own monocular detector
and their masks from the depth inside each box (:mod:`demopose.pipeline.masks`); pass ``masks`` and
``class_ids`` (e.g. from your segmentation network) to use yours. A pose network without a detector (``gpv``,
``cleanpose``) takes a separate detector checkpoint (``detector=``, e.g. :data:`BUNDLED_DETECTOR`) or your masks;
a monocular model (``mono``) needs none.

Every pose comes from :func:`demopose.pipeline.predict_frame` with the point count and seed the
checkpoint was trained and tested with (:func:`~demopose.pipeline.inference_settings`) and, for detector
masks, :func:`~demopose.pipeline.detector_instances`: the path of ``demopose test`` (``eval.masks=gt``
or ``detector``), so both give the same poses for the same frame.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from demopose.categories import CategoryTable
from demopose.data.frame import Frame
from demopose.data.input_checks import check_depth_dtype, check_intrinsics, check_masks, check_object_scale
from demopose.data.instances import N_POINTS
from demopose.engine.precision import autocast
from demopose.geometry.camera import Intrinsics
from demopose.geometry.pose import PoseSet
from demopose.io import cache_dir, write_json_atomic
from demopose.models.base import Detector, PoseModel
from demopose.pipeline import (
    MIN_SIZE,
    Instances,
    detection_instances,
    find_detector,
    inference_settings,
    predict_frame,
    score_filtered,
)

__all__ = ["BUNDLED_CHECKPOINT", "BUNDLED_DETECTOR", "ObjectPose", "Predictor", "validate_inputs"]

log = logging.getLogger(__name__)

BUNDLED_CHECKPOINT = Path(__file__).parent / "assets" / "demopose_synth_small.pt"
"""DeMo-Pose (``demopose_small``) trained on this project's synthetic data (docs/checkpoints.md)."""

BUNDLED_DETECTOR = Path(__file__).parent / "assets" / "mono_synth_small.pt"
"""The small monocular detector (``mono_small``, synthetic data): objects and masks for a pose network without a
detector of its own (``gpv``, ``cleanpose``)."""


@dataclass
class ObjectPose:
    """One estimated object.

    Attributes:
        class_id: 1-based category id; class_name: its name.
        score: detection confidence (1 for given masks).
        R: ``(3, 3)`` object -> camera rotation. t: ``(3,)`` box centre in the camera frame, metres.
        size: ``(3,)`` box extents along the object's x, y, z, metres.
        box: ``(4,)`` 2D box x1 y1 x2 y2 (pixels) of the instance mask, or None.
        size_clamped: an extent was predicted below :data:`~demopose.pipeline.MIN_SIZE` (negative or
            near zero) and raised to it: the size (and the box) of this object are not to be trusted.
    """

    class_id: int
    class_name: str
    score: float
    R: np.ndarray
    t: np.ndarray
    size: np.ndarray
    box: np.ndarray | None = None
    size_clamped: bool = False

    def to_dict(self) -> dict:
        """JSON-ready dict (lists, metres)."""
        return {"class_id": self.class_id, "class_name": self.class_name, "score": round(float(self.score), 4),
                "R": np.round(self.R, 6).tolist(), "t": np.round(self.t, 6).tolist(),
                "size": np.round(self.size, 6).tolist(), "size_clamped": bool(self.size_clamped),
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
    check_depth_dtype(depth, source)  # bool / complex / object depth is refused, not read as 0/1 metres
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
    H, W = depth.shape
    K = check_intrinsics(K, W, H, source)  # finite; fx, fy, cx, cy against the image size
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


def _box_region(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An ``x1 y1 x2 y2`` box as an ``(H, W)`` bool region."""
    H, W = shape
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    r = np.zeros((H, W), bool)
    r[max(0, y1):min(H, y2 + 1), max(0, x1):min(W, x2 + 1)] = True
    return r


def _integer_ids(class_ids) -> np.ndarray:
    """``class_ids`` as int64, refusing non-integral or non-numeric values (1.5, "mug", NaN)."""
    try:
        a = np.asarray(class_ids, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"class_ids: expected 1-based integer category ids, got {class_ids!r}") from None
    if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
        raise ValueError(f"class_ids: expected 1-based integer category ids, got {a.tolist()}")
    return a.astype(np.int64)


def _scores(scores, n: int) -> np.ndarray:
    """``scores`` as ``(n,)`` float64 in [0, 1]; a wrong length or a non-finite value is an error."""
    try:
        sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"scores: expected {n} numbers (one per mask), got {scores!r}") from None
    if len(sc) != n:
        raise ValueError(f"scores: expected {n} scores (one per mask), got {len(sc)}")
    if not np.all(np.isfinite(sc)):
        raise ValueError(f"scores: NaN or infinite values in {sc.tolist()}")
    return sc


class Predictor:
    """Estimate the 9-DoF poses of the objects in RGB-D frames.

    Args:
        model: a :class:`~demopose.models.base.PoseModel` (DeMo-Pose, GPV family, CleanPose) or a
            :class:`~demopose.models.base.Detector` (the monocular model), torch or onnxruntime (eval mode is set
            here).
        device: torch device.
        score_threshold: detections below it are dropped (detector-driven masks only).
        n_points: points sampled per instance (the model's training value; :meth:`from_checkpoint` reads it).
        seed: point-sampling seed (results are deterministic for a given seed).
        detector: a :class:`~demopose.models.base.Detector` giving the objects and masks (default: the model's
            own, if any); for a DeMo-Pose model another detector gives only the masks (the fusion then runs the
            model's own).
        precision: ``fp32`` (default: the same input gives the same poses on every machine) or ``bf16``
            (matrix products under bfloat16 autocast, faster on CPUs with AMX; poses differ slightly, see
            ``benchmarks/results/bf16_inference_accuracy.md``).
    """

    def __init__(self, model: PoseModel | Detector, device: str | torch.device = "cpu", score_threshold: float = 0.3,
                 n_points: int = N_POINTS, seed: int = 0, detector: Detector | None = None,
                 precision: str = "fp32") -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision: expected 'fp32' or 'bf16', got {precision!r}")
        self.precision = precision
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.score_threshold = float(score_threshold)
        self.n_points = int(n_points)
        self.seed = int(seed)
        if not isinstance(model, (PoseModel, Detector)):
            raise TypeError(f"Predictor: a {type(model).__name__} is neither a pose model nor a detector "
                            f"(demopose.models.base.PoseModel / Detector)")
        self.categories: CategoryTable = self.model.categories
        self._own_detector = find_detector(self.model)
        self._detector = self._own_detector
        if detector is not None:
            self.set_detector(detector)

    def set_detector(self, detector: Detector) -> None:
        """Take the objects and masks from ``detector`` (a :class:`~demopose.models.base.Detector`) from now on.

        Raises:
            ValueError: the model is itself a monocular detector, ``detector`` is none, or its categories differ.
        """
        if self._own_detector is self.model:
            raise ValueError(f"{type(self.model).__name__} is a monocular detector: it finds its objects itself "
                             f"and takes no other detector")
        if not isinstance(detector, Detector):
            raise ValueError(f"{type(detector).__name__} is not a monocular detector (not a "
                             f"demopose.models.base.Detector: no detect_frame)")
        if detector.categories.name != self.categories.name:
            raise ValueError(f"the detector's categories ({detector.categories.name}) differ from the pose model's "
                             f"({self.categories.name})")
        self._detector = detector.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, backend: str = "torch",
                        threads: int | None = None, detector: str | os.PathLike | None = None,
                        **kwargs) -> Predictor:
        """Load a model; ``path`` None: the bundled DeMo-Pose.

        Args:
            path: a checkpoint (``.pt``, :func:`demopose.engine.checkpoint.load_model`) or, with the
                ``onnxruntime`` backend, an exported model (``demopose export``; a DeMo-Pose export is its
                base path ``x.onnx`` or either of ``x.mono.onnx`` / ``x.pose.onnx``).
            backend: ``torch`` or ``onnxruntime`` (same API and outputs; a ``.pt`` is exported once to
                ``$DEMOPOSE_CACHE/onnx``, default ``~/.cache/demopose/onnx``).
            threads: onnxruntime intra-op threads (torch: use ``torch.set_num_threads``).
            detector: a monocular detector checkpoint (``mono``) giving objects and masks to a pose network
                without its own detector (e.g. :data:`BUNDLED_DETECTOR`); see the class arguments.
            kwargs: the class arguments; ``n_points`` and ``seed`` default to the checkpoint's training config
                (``data.n_points``, ``eval.seed``), as ``demopose test`` uses them.
        """
        p = Path(path) if path is not None else BUNDLED_CHECKPOINT
        if not p.exists() and not (backend != "torch" and p.suffix == ".onnx"):
            raise FileNotFoundError(f"{p}: model file not found" +
                                    (" (the bundled checkpoint is missing from this installation)"
                                     if path is None else ""))
        if p.suffix == ".pt" and p.is_file():
            from demopose.engine.checkpoint import load_checkpoint

            for k, v in inference_settings(load_checkpoint(p).get("config")).items():
                kwargs.setdefault(k, v)
        if detector is not None:
            from demopose.engine.checkpoint import load_model

            kwargs["detector"] = load_model(detector, map_location=kwargs.get("device", "cpu"))
        if backend == "torch":
            from demopose.engine.checkpoint import load_model

            return cls(load_model(p, map_location=kwargs.get("device", "cpu")), **kwargs)
        if backend not in ("onnxruntime", "ort"):
            raise ValueError(f"backend: expected 'torch' or 'onnxruntime', got {backend!r}")
        if kwargs.get("precision", "fp32") != "fp32":
            raise ValueError("precision bf16: the torch backend only (onnxruntime runs the exported fp32 / int8 "
                             "graphs)")
        if kwargs.get("device", "cpu") != "cpu":
            raise ValueError("backend onnxruntime: runs on the CPU here (device='cpu')")
        from demopose.export.ort_backend import load_ort_model

        if p.suffix == ".pt":
            p = _exported(p)
        return cls(load_ort_model(p, threads=threads), **kwargs)

    @property
    def detector(self) -> Detector | None:
        """The monocular detector giving the objects: the one passed in, else the model's own (the model itself
        for ``mono``), or None."""
        return self._detector

    # ------------------------------------------------------------------------------------------
    def make_frame(self, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, depth_scale: float | None = None,
                   source: str = "input") -> Frame:
        """A :class:`Frame` without annotations from validated inputs (:func:`validate_inputs`)."""
        rgb, depth, K = validate_inputs(rgb, depth, K, source, depth_scale)
        H, W = depth.shape
        return Frame(rgb=rgb, depth=depth, intrinsics=Intrinsics.from_matrix(K, W, H),
                     instance_map=np.zeros((H, W), np.int32), instance_ids=np.zeros(0, np.int64),
                     class_ids=np.zeros(0, np.int64), categories=self.categories, frame_id=source,
                     meta={"depth_scale": depth_scale})

    def detect(self, frame: Frame):
        """The detector's objects in ``frame`` with score >= ``score_threshold`` (a
        :class:`~demopose.pipeline.Instances`)."""
        det_model = self.detector
        if det_model is None:
            raise ValueError(f"{type(self.model).__name__} has no detector: pass masks and class_ids, or a "
                             f"detector (Predictor.from_checkpoint(..., detector=BUNDLED_DETECTOR))")
        with autocast(self.precision, self.device):
            found = det_model.detect_frame(frame, device=self.device)
        return score_filtered(found, self.score_threshold)

    def masks_for(self, frame: Frame, det: Instances) -> Instances:
        """Instances of detections (``boxes``, ``class_ids``, ``scores``) with masks cut from the depth
        (:func:`~demopose.pipeline.detection_instances`; the model's own detector's feature maps kept)."""
        return detection_instances(frame, det, self.categories, min_pixels=50,
                                   keep_features=self.detector is self._own_detector)

    def instances(self, frame: Frame) -> Instances:
        """Objects and masks found by the detector (score >= ``score_threshold``) plus depth: the steps of
        :func:`~demopose.pipeline.detector_instances`."""
        return self.masks_for(frame, self.detect(frame))

    def predict_frame(self, frame: Frame, instances: Instances | None = None,
                      seed: int | None = None) -> tuple[PoseSet, Instances]:
        """Poses of a :class:`Frame` (with ``instances``, or the detector's) and the instances used (those with
        enough valid depth points). ``seed``: point sampling (default :attr:`seed`; ``demopose test`` uses
        ``eval.seed + frame index``)."""
        if self.detector is self.model:  # the monocular model estimates poses itself
            if instances is not None:
                raise ValueError(f"{type(self.model).__name__} is a monocular detector: it finds its objects "
                                 f"itself and takes no masks")
            det = self.detect(frame)
            self._check_scale(frame, [_box_region(b, frame.depth.shape) for b in det.boxes], det.class_ids)
            with autocast(self.precision, self.device):
                poses = self.model.poses_from_detections(frame, det)
            H, W = frame.depth.shape
            return poses, Instances(masks=np.zeros((len(poses), H, W), bool), class_ids=poses.class_ids,
                                    scores=poses.scores)
        if instances is None:
            instances = self.instances(frame)
        if len(instances.class_ids) == 0:
            return PoseSet.empty(), instances
        self._check_scale(frame, instances.masks, instances.class_ids)
        seed = self.seed if seed is None else int(seed)
        with autocast(self.precision, self.device):
            poses, kept = predict_frame(self.model, frame, instances, self.n_points, seed, self.device,
                                        instances.features)
        return poses, replace(instances.select(kept), features=None)

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
            masks = check_masks(masks, frame.height, frame.width)  # bool or two-level; soft masks refused
            if class_ids is None:
                raise ValueError("masks: class_ids (M,) are required with masks (1-based category ids)")
            class_ids = _integer_ids(class_ids)
            if len(class_ids) != len(masks):
                raise ValueError(f"class_ids: expected {len(masks)} ids (one per mask), got {len(class_ids)}")
            bad = [int(c) for c in class_ids if int(c) not in self.categories]
            if bad:
                raise ValueError(f"class_ids: {bad} are not categories of {self.categories.name} "
                                 f"({[(c.id, c.name) for c in self.categories]})")
            sc = np.ones(len(masks)) if scores is None else _scores(scores, len(masks))
            inst = Instances(masks=masks, class_ids=class_ids, scores=sc)
        return self.objects(*self.predict_frame(frame, inst))

    def _check_scale(self, frame: Frame, regions, class_ids) -> None:
        """Objects far too big or small for their categories: wrong depth units (:func:`check_object_scale`)."""
        check_object_scale(frame.depth, frame.K, regions, class_ids, self.categories, frame.frame_id or "input",
                           (frame.meta or {}).get("depth_scale"))

    def objects(self, poses: PoseSet, inst: Instances) -> list[ObjectPose]:
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
                                  poses.size[i], box, bool((poses.size[i] <= MIN_SIZE).any())))
        return out
