"""ONNX Runtime backends: exported graphs that behave like the PyTorch models at inference.

- :class:`OrtPoseModel` wraps a pose graph (``gpv`` family): ``model(batch, generator=None) -> PosePrediction``
  reads the same batch keys as :class:`~demopose.models.gpv.GPVPose` and draws the random pooling subsets
  from ``generator`` exactly as the PyTorch model does, so with the same generator the two give the same
  poses to float rounding (PyTorch on CPU with its compiled kNN kernel, or under
  :func:`demopose.layers.knn.exact_distances`: the neighbour search the graph records; with the matrix-multiply
  search of PyTorch on GPU, real depth can differ by a swapped near-equidistant neighbour). ``eval()`` /
  ``train()`` are no-ops and ``training`` is False, so :func:`demopose.pipeline.run_inference` runs it
  unchanged.
- :class:`OrtMonoDetector` wraps a mono graph with the detector's inference API (``detect_images``,
  ``detect_frame``, ``poses_from_detections``, ``predict_frame``, ``feature_map``); decoding and NMS are the
  PyTorch model's own functions (:func:`demopose.models.mono.postprocess_detections`).
- :class:`OrtDeMoPose` chains the two graphs of an exported DeMo-Pose model with the bilinear feature sampling
  (:func:`demopose.layers.feature_sampling.sample_feature_map`) between them, like
  :class:`~demopose.models.demopose.DeMoPose`.
- :func:`load_ort_model` picks the right class from a file's metadata.

Everything the runtime needs (categories, mean sizes, symmetry table, pooling sizes, priors, thresholds) is
read from the file's ``demopose.*`` metadata (:func:`demopose.export.onnx_export.read_metadata`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from demopose._checks import check_shape
from demopose.categories import CategoryTable, get_table
from demopose.export.onnx_export import graph_paths, read_metadata
from demopose.layers.feature_sampling import check_frame_inputs, sample_point_features
from demopose.models.base import PosePrediction

__all__ = ["OrtDeMoPose", "OrtMonoDetector", "OrtPoseModel", "create_session", "load_ort_model"]


def create_session(path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` for ``path``.

    Args:
        providers: execution providers in order of preference (default: CUDA when this onnxruntime build has it,
            then CPU).
        threads: intra-op threads (default: onnxruntime's choice, one per physical core); inter-op is 1.
    """
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the onnxruntime backend needs 'onnxruntime': pip install 'demopose[export]'") from e
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ONNX model {p} does not exist")
    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads: expected a positive count, got {threads}")
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3  # errors only
    # idle pool threads sleep instead of spinning: the pipeline around the graphs (torch, OpenCV, numpy) needs the
    # cores between runs
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    available = ort.get_available_providers()
    if providers is None:
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    else:
        missing = [q for q in providers if q not in available]
        if missing:
            raise ValueError(f"providers: {missing} not available in this onnxruntime build (available: {available})")
    return ort.InferenceSession(str(p), sess_options=opts, providers=list(providers))


def _config(config: Mapping[str, Any], cls: type) -> Any:
    """The ``cls`` record of a config dict read from JSON metadata (its fields only: exports of other versions may
    hold others), read as the builders read their arguments (:func:`~demopose.models.registry.config_from_overrides`:
    lists as tuples, nested options over the defaults)."""
    from demopose.models.registry import config_from_overrides

    fields = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    return config_from_overrides(cls(), {k: v for k, v in config.items() if k in fields})


def _np(x: Any, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x), dtype=dtype)


class _OrtModule:
    """Shared no-op mode switches: an ONNX graph has no training mode."""

    training = False

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def to(self, *args, **kwargs):
        return self


class OrtPoseModel(_OrtModule):
    """An exported pose graph (``gpv`` / ``hs_pose`` / DeMo-Pose's depth branch) run by onnxruntime; a
    :class:`~demopose.models.base.PoseModel` (``config``: the exported network's
    :class:`~demopose.models.gpv.GPVConfig`).

    Args:
        path: ``.onnx`` file written by :func:`demopose.export.export_pose_graph` (fp32 or int8).
        providers, threads: see :func:`create_session`.

    ``model(batch, generator=None)`` reads ``points (B, N, 3)`` (``N`` = :attr:`n_points`), ``class_ids (B,)``,
    optional ``y_symmetric (B,)`` and ``mean_size (B, 3)`` (defaults from the exported model's tables, as
    :class:`~demopose.models.gpv.GPVPose`), ``rgb_point_features (B, N, C)`` for fusion graphs, and optional
    ``pool_indices`` (two int64 index tensors; default: drawn from ``generator``). Returns a
    :class:`PosePrediction` on the device of ``points`` with ``outputs`` ``mean_size``, ``y_symmetric``.
    """

    image_size = None  # the PoseModel contract: points only (a fusion graph's features come from OrtDeMoPose)
    rgb_size = None
    mesh_points = 0
    own_detector = None

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None) -> None:
        from demopose.models.gpv import GPVConfig

        self.path = Path(path)
        self.meta = read_metadata(self.path)
        if self.meta.get("graph") != "pose":
            raise ValueError(f"{self.path}: a {self.meta.get('graph')!r} graph, expected a pose graph")
        self.session = create_session(self.path, providers, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.config = _config(self.meta["config"], GPVConfig)
        self.categories = get_table(self.meta["category_table"])
        self.num_classes = len(self.categories)
        self.n_points = int(self.meta["n_points"])
        self.pool_sizes = tuple(int(v) for v in self.meta["pool_sizes"])
        self.mean_sizes = torch.tensor(self.meta["mean_sizes"], dtype=torch.float32)
        self.y_symmetric_table = torch.tensor(self.meta["y_symmetric_table"], dtype=torch.bool)
        self.rgb_channels = int(self.meta.get("rgb_channels", 0))
        self.name = self.meta.get("model")

    def __repr__(self) -> str:
        return f"OrtPoseModel({str(self.path)!r}, model={self.name!r}, providers={self.session.get_providers()})"

    def draw_pool_indices(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooling subsets, drawn as :meth:`demopose.models.gpv.GPVBackbone.draw_pool_indices` draws them
        (same generator -> same subsets as the PyTorch model)."""
        out, n = [], self.n_points
        for keep in self.pool_sizes:
            dev = generator.device if generator is not None else "cpu"
            out.append(torch.randperm(n, generator=generator, device=dev)[:keep])
            n = keep
        return out[0], out[1]

    def run(self, points, class_ids, y_symmetric, mean_size, pool_indices, rgb_point_features=None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One session run on validated arrays; returns ``R (B, 3, 3)``, ``t (B, 3)``, ``size (B, 3)`` float32."""
        feed = {"points": _np(points, np.float32), "class_ids": _np(class_ids, np.int64),
                "y_symmetric": _np(y_symmetric, np.bool_), "mean_size": _np(mean_size, np.float32),
                "pool_index_1": _np(pool_indices[0], np.int64), "pool_index_2": _np(pool_indices[1], np.int64)}
        if "rgb_point_features" in self.input_names:
            feed["rgb_point_features"] = _np(rgb_point_features, np.float32)
        R, t, size = self.session.run(["R", "t", "size"], feed)
        return R, t, size

    def __call__(self, batch: Mapping[str, Any], generator: torch.Generator | None = None) -> PosePrediction:
        for key in ("points", "class_ids"):
            if key not in batch:
                raise KeyError(f"OrtPoseModel batch: missing key {key!r} (needs 'points' and 'class_ids')")
        points = torch.as_tensor(batch["points"])
        dims = check_shape(points, f"B {self.n_points} 3", f"batch['points'] ({self.path.name} was exported for "
                                                           f"{self.n_points} points)")
        class_ids = torch.as_tensor(batch["class_ids"]).long().reshape(-1).cpu()
        check_shape(class_ids, "B", "batch['class_ids']", dims)
        if class_ids.numel() and (int(class_ids.min()) < 1 or int(class_ids.max()) > self.num_classes):
            raise ValueError(f"batch['class_ids']: expected 1-based ids in 1..{self.num_classes} "
                             f"({self.categories.name}), got {class_ids.tolist()}")
        sym = batch.get("y_symmetric")
        sym = self.y_symmetric_table[class_ids] if sym is None else torch.as_tensor(sym).bool().reshape(-1).cpu()
        check_shape(sym, "B", "batch['y_symmetric']", dims)
        mean_size = batch.get("mean_size")
        mean_size = self.mean_sizes[class_ids] if mean_size is None else torch.as_tensor(mean_size).float().cpu()
        check_shape(mean_size, "B 3", "batch['mean_size']", dims)
        rgb = None
        if self.rgb_channels:
            if "rgb_point_features" not in batch:
                raise KeyError(f"OrtPoseModel batch: {self.path.name} fuses RGB features; missing "
                               f"'rgb_point_features' (B, N, {self.rgb_channels})")
            rgb = torch.as_tensor(batch["rgb_point_features"])
            check_shape(rgb, f"B {self.n_points} {self.rgb_channels}", "batch['rgb_point_features']", dims)
        pools = batch.get("pool_indices")
        pools = self.draw_pool_indices(generator) if pools is None else pools
        R, t, size = self.run(points, class_ids, sym, mean_size, pools, rgb)
        dev = points.device
        return PosePrediction(R=torch.from_numpy(R).to(dev), t=torch.from_numpy(t).to(dev),
                              size=torch.from_numpy(size).to(dev), score=None,
                              outputs={"mean_size": mean_size.to(dev), "y_symmetric": sym.to(dev)})


class OrtMonoDetector(_OrtModule):
    """An exported mono graph with the inference API of :class:`~demopose.models.mono.MonoDetector`; a
    :class:`~demopose.models.base.Detector`.

    Args:
        path: ``.onnx`` file written by :func:`demopose.export.export_mono_graph`.
        providers, threads: see :func:`create_session`.
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None) -> None:
        from demopose.models.gfl_head import make_priors
        from demopose.models.mono import MonoConfig

        self.path = Path(path)
        self.meta = read_metadata(self.path)
        if self.meta.get("graph") != "mono":
            raise ValueError(f"{self.path}: a {self.meta.get('graph')!r} graph, expected a mono graph")
        self.session = create_session(self.path, providers, threads)
        self.config = _config(self.meta["config"], MonoConfig)
        self.categories = get_table(self.meta["category_table"])
        self.class_ids = np.asarray(self.meta["class_ids"], dtype=np.int64)
        self.strides = tuple(int(s) for s in self.meta["strides"])
        self.num_keypoints = int(self.meta["num_keypoints"])
        self.feature_levels = tuple(int(v) for v in self.meta["feature_levels"])
        self.feature_outputs = list(self.meta["feature_outputs"])
        self.priors, self.prior_strides, _ = make_priors([tuple(s) for s in self.meta["level_shapes"]], self.strides)
        self.name = self.meta.get("model")

    def __repr__(self) -> str:
        return f"OrtMonoDetector({str(self.path)!r}, model={self.name!r}, providers={self.session.get_providers()})"

    @property
    def image_size(self) -> tuple[int, int]:
        """``(W_in, H_in)`` of the letterboxed frame the graph reads."""
        return tuple(self.config.input_size)  # type: ignore[return-value]

    def run(self, images: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
        """Raw graph outputs by name (``cls``, ``reg``, ``kpt``, ``size``, feature maps) for ``images (B, 3, H_in,
        W_in)``, as CPU tensors."""
        W, H = self.config.input_size
        check_shape(images, f"B 3 {H} {W}", f"images ({self.path.name} was exported for {W}x{H} inputs)")
        outs = self.session.run(None, {"images": _np(images, np.float32)})
        names = [o.name for o in self.session.get_outputs()]
        return {n: torch.from_numpy(o) for n, o in zip(names, outs)}

    def feature_map(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The exported PAN levels (:attr:`feature_levels`, stride 8 first), each ``(B, C_neck, h, w)``."""
        out = self.run(images)
        dev = images.device if isinstance(images, torch.Tensor) else "cpu"
        return [out[n].to(dev) for n in self.feature_outputs]

    @torch.no_grad()
    def detect_images(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """As :meth:`MonoDetector.detect_images`: per image ``boxes``, ``labels`` (0-based), ``scores``,
        ``keypoints``, ``rel_size`` in input pixels."""
        return self._detect(images)[0]

    def _detect(self, images: torch.Tensor) -> tuple[list[dict[str, torch.Tensor]], dict[int, torch.Tensor]]:
        """:meth:`detect_images` and the exported PAN levels of the same run (``{level: (B, C, h, w)}``)."""
        from demopose.models.mono import postprocess_detections

        out = self.run(images)
        head = {k: out[k] for k in ("cls", "reg", "kpt", "size")}
        res = postprocess_detections(head, self.priors, self.prior_strides, tuple(images.shape[-2:]), self.config,
                                     self.num_keypoints)
        dev = images.device if isinstance(images, torch.Tensor) else "cpu"
        feats = {lv: out[n].to(dev) for lv, n in zip(self.feature_levels, self.feature_outputs)}
        return [{k: v.to(dev) for k, v in r.items()} for r in res], feats

    def detect_frame(self, frame, device: torch.device | str | None = None):
        """As :meth:`MonoDetector.detect_frame`, exported levels kept in ``features`` (``device`` is accepted for
        API parity; onnxruntime picks its own)."""
        from demopose.models.mono import detections_to_frame, letterbox_frame

        image, M = letterbox_frame(frame, self.config.input_size)
        dets, feats = self._detect(torch.from_numpy(image)[None])
        det = detections_to_frame(dets[0], M, self.class_ids)
        det.features = feats
        return det

    def poses_from_detections(self, frame, det, use_depth: bool = True):
        """As :meth:`MonoDetector.poses_from_detections` (PnP + depth or mean-size scale)."""
        from demopose.models.keypoint_pose import poses_from_keypoints

        depth = frame.depth if use_depth and frame.depth is not None and np.any(frame.depth > 0) else None
        return poses_from_keypoints(det.keypoints, det.rel_size, det.class_ids, det.scores, frame.K,
                                    self.categories, boxes=det.boxes, depth=depth)

    def predict_frame(self, frame, device: torch.device | str | None = None):
        """Detect and estimate every object's pose in ``frame`` (a :class:`~demopose.geometry.pose.PoseSet`)."""
        return self.poses_from_detections(frame, self.detect_frame(frame, device))


class OrtDeMoPose(_OrtModule):
    """An exported DeMo-Pose model (mono graph + pose graph) with the batch API of
    :class:`~demopose.models.demopose.DeMoPose`; a :class:`~demopose.models.base.PoseModel` whose ``own_detector``
    is the mono graph (``config``: a :class:`~demopose.models.demopose.DeMoPoseConfig` holding the two exported
    networks' full configs as ``pose_args`` / ``mono_args``).

    Args:
        path: the export base path (``x.onnx`` for ``x.mono.onnx`` + ``x.pose.onnx``) or either of the two files
            (the other is found through the metadata).
        providers, threads: see :func:`create_session`.
    """

    rgb_size = None  # the PoseModel contract: the colour comes from the whole frame (image_size)
    mesh_points = 0

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None) -> None:
        from dataclasses import asdict

        from demopose.models.demopose import DeMoPoseConfig

        p = Path(path)
        if p.is_file():
            link = read_metadata(p).get("demopose")
            if not link:
                raise ValueError(f"{p}: not part of an exported DeMo-Pose model (no 'demopose.demopose' metadata)")
            paths = {"mono": p.with_name(link["mono"]), "pose": p.with_name(link["pose"])}
        else:
            paths = graph_paths(p, "demopose")
        self.mono = OrtMonoDetector(paths["mono"], providers, threads)
        self.pose = OrtPoseModel(paths["pose"], providers, threads)
        link = self.pose.meta.get("demopose") or {}
        self.levels = tuple(int(v) for v in link.get("feature_levels", self.mono.feature_levels))
        if self.levels != self.mono.feature_levels:
            raise ValueError(f"{paths['mono']}: exports feature levels {self.mono.feature_levels}, the pose graph "
                             f"{paths['pose']} reads {self.levels}")
        self.name = self.pose.name
        pc = self.pose.config
        fused = ("fusion", "rgb_channels", "mesh_points", "mpl_weight")  # DeMoPoseConfig's own fields
        self.config = DeMoPoseConfig(pose_args={k: v for k, v in pc.to_dict().items() if k not in fused},
                                     mono_args=asdict(self.mono.config), fusion=pc.fusion, feature_levels=self.levels,
                                     mesh_points=pc.mesh_points, mpl_weight=pc.mpl_weight)

    def __repr__(self) -> str:
        return f"OrtDeMoPose({str(self.mono.path)!r}, {str(self.pose.path)!r}, model={self.name!r})"

    @property
    def image_size(self) -> tuple[int, int]:
        """``(W_in, H_in)`` of the letterboxed frame the fusion reads."""
        return self.mono.image_size

    @property
    def categories(self) -> CategoryTable:
        return self.pose.categories

    @property
    def own_detector(self) -> OrtMonoDetector:
        """The mono graph: it finds the objects, and the fusion reuses the feature maps of its detections."""
        return self.mono

    @torch.no_grad()
    def point_features(self, images: torch.Tensor | None, image_pixels: torch.Tensor,
                       image_index: torch.Tensor | None = None,
                       features: Mapping[int, torch.Tensor] | None = None) -> torch.Tensor:
        """As :meth:`DeMoPose.point_features`: ``(B, N, C1 · len(levels))`` from the mono graph's feature maps
        (or from ``features``, the detection run's)."""
        W, H = self.image_size
        check_frame_inputs(images, image_pixels, image_index, features, self.levels, (W, H), self.mono.strides)
        if features is None:
            features = dict(zip(self.mono.feature_levels, self.mono.feature_map(images)))
        return sample_point_features([features[lv] for lv in self.levels], image_pixels, image_index, (H, W))

    def __call__(self, batch: Mapping[str, Any], generator: torch.Generator | None = None) -> PosePrediction:
        if "image_pixels" not in batch or ("image" not in batch and "image_features" not in batch):
            raise KeyError("OrtDeMoPose batch: needs 'image_pixels' and 'image' (or the detector's 'image_features'); "
                           "build samples with sample_instance(..., image_size=model.image_size)")
        rgb = self.point_features(batch.get("image"), batch["image_pixels"], batch.get("image_index"),
                                  batch.get("image_features"))
        return self.pose({**batch, "rgb_point_features": rgb}, generator)


def load_ort_model(path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None):
    """The onnxruntime backend for an exported file: :class:`OrtPoseModel`, :class:`OrtMonoDetector` or (for the
    DeMo-Pose base path or either of its files) :class:`OrtDeMoPose`."""
    p = Path(path)
    if not p.is_file():
        if all(q.is_file() for q in graph_paths(p, "demopose").values()):
            return OrtDeMoPose(p, providers, threads)
        raise FileNotFoundError(f"ONNX model {p} does not exist")
    meta = read_metadata(p)
    if meta.get("demopose"):
        return OrtDeMoPose(p, providers, threads)
    if meta.get("graph") == "pose":
        return OrtPoseModel(p, providers, threads)
    if meta.get("graph") == "mono":
        return OrtMonoDetector(p, providers, threads)
    raise ValueError(f"{p}: unknown graph kind {meta.get('graph')!r} in its metadata")
