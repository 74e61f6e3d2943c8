"""Export the inference graphs of demopose models to ONNX, with a dynamic number of instances / images.

What is exported (eval mode; training-only heads are never traced):

- **pose graph** (``gpv``, ``gpv_small``, ``hs_pose``, ``hs_pose_small`` and the depth branch of ``demopose``):
  :meth:`demopose.models.gpv.GPVPose.predict`. Inputs ``points (B, N, 3)`` float32 metres, ``class_ids (B,)``
  int64 (1-based), ``y_symmetric (B,)`` bool, ``mean_size (B, 3)`` float32 metres, ``pool_index_1 (N1,)`` and
  ``pool_index_2 (N2,)`` int64 (the random pooling subsets: ``N1 = int(N / 4)`` of ``range(N)``, then
  ``N2 = int(N1 / 4)`` of ``range(N1)``, drawn without replacement), and for fusion models
  ``rgb_point_features (B, N, C)`` float32. Outputs ``R (B, 3, 3)``, ``t (B, 3)`` metres, ``size (B, 3)``
  metres. ``B`` is dynamic; ``N`` is fixed at export (the model's ``num_points``, 1028). The mesh-point head
  (DeMo-Pose MPL) and the face-voting / reconstruction heads exist only in training and are absent. The graph's
  neighbour search is the backend-independent one of :func:`demopose.layers.knn.exact_distances`, which PyTorch
  also runs on CPU through the compiled kNN kernel (:mod:`demopose.native.knn`): the two give the same poses to
  float rounding, also on real depth. Where PyTorch runs the matrix-multiply distances (GPU, no kernel) it can
  pick other neighbours among near-equidistant pixels.
- **mono graph** (``mono``, ``mono_small`` and the detector of ``demopose``): input ``images (B, 3, H_in, W_in)``
  (letterboxed, normalised: :func:`demopose.models.mono.letterbox_frame`); outputs the raw head tensors
  ``cls (B, P, C)``, ``reg (B, P, 4(n+1))``, ``kpt (B, P, 18)``, ``size (B, P, 3)`` and the PAN feature map
  ``feature_map (B, C_neck, H_in/8, W_in/8)`` (stride 8; other levels the DeMo-Pose model reads come as
  ``feature_map_<level>``). Decoding and NMS run outside the graph
  (:func:`demopose.models.mono.postprocess_detections`), for both backends.
- ``demopose``: two files, ``<stem>.mono.onnx`` and ``<stem>.pose.onnx``; the bilinear sampling of the feature map
  at the points' pixels between them runs in torch (:class:`demopose.export.ort_backend.OrtDeMoPose`).
- ``cleanpose`` / ``agpose``: refused with :class:`ExportError` (see :data:`CLEANPOSE_REASON`).

Every file carries the model name, its configuration and what the runtime needs (category table, mean sizes,
symmetry table, pooling rates, priors) in the ONNX ``metadata_props`` (keys ``demopose.*``), so
:mod:`demopose.export.ort_backend` rebuilds a working model from the file alone. Files are written atomically
and hold their weights inline (one self-contained file).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from demopose.io import atomic_path

__all__ = [
    "CLEANPOSE_REASON",
    "FORMAT",
    "ExportError",
    "MonoGraph",
    "PoseGraph",
    "export_checkpoint",
    "export_model",
    "export_mono_graph",
    "export_pose_graph",
    "graph_paths",
    "read_metadata",
    "write_model",
]

log = logging.getLogger(__name__)

FORMAT = "demopose-onnx/1"
"""Value of the ``demopose.format`` metadata entry of every exported file."""

OPSET = 18
"""ONNX opset of the exported graphs (onnxruntime >= 1.17 runs it)."""

TRAINING_ONLY = ("mesh_head", "face_recon")
"""Submodules of :class:`~demopose.models.gpv.GPVPose` used only in training; the export checks that none of
their weights reached the graph."""

CLEANPOSE_REASON = (
    "PointNet++ farthest point sampling (demopose.geometry.sampling.farthest_point_sample) is a loop of M "
    "sequential, data-dependent argmax steps (512 + 256 + 128 + 64 for CleanPose) that torch.export can only unroll "
    "into one ONNX subgraph per step (4.6k nodes and about 3 minutes of export for cleanpose_small on a 2-core "
    "CPU; ONNX has no farthest-point-sampling operator); the unrolled graph returns NaN in onnxruntime because the "
    "exporter's graph optimizer drops the '+ 1e-8' of PointNet++'s inverse-distance weights 1 / (d + 1e-8) "
    "(three_interpolate), so a point that coincides with a sampled centre gets the weight 1/0; and the class-id "
    "checks of the model and of the confounder dictionary and the chunked ball query fix the number of instances "
    "at export. A usable export would take the sampled centre indices as graph inputs (computed outside, as the "
    "gpv pooling subsets are). Run CleanPose with the PyTorch backend."
)
"""Why ``cleanpose`` / ``agpose`` are not exported (measured on cleanpose_small, torch 2.13, onnxruntime 1.31)."""


class ExportError(ValueError):
    """The model cannot be exported (the message says which part and why)."""


# --------------------------------------------------------------------------------------------------
# traceable wrappers
# --------------------------------------------------------------------------------------------------


class PoseGraph(nn.Module):
    """The traced inference path of a :class:`~demopose.models.gpv.GPVPose` (see the module docstring).

    ``forward(points, class_ids, y_symmetric, mean_size, pool_index_1, pool_index_2[, rgb_point_features])
    -> (R, t, size)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, points: torch.Tensor, class_ids: torch.Tensor, y_symmetric: torch.Tensor,
                mean_size: torch.Tensor, pool_index_1: torch.Tensor, pool_index_2: torch.Tensor,
                rgb_point_features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pred = self.model.predict(points, class_ids, y_symmetric, mean_size, rgb_point_features,
                                  pool_indices=(pool_index_1, pool_index_2))
        return pred.R, pred.t, pred.size


class MonoGraph(nn.Module):
    """Backbone, PAN and heads of a :class:`~demopose.models.mono.MonoDetector`:
    ``forward(images) -> (cls, reg, kpt, size, *feature maps of feature_levels)``."""

    def __init__(self, model: nn.Module, feature_levels: Sequence[int] = (0,)) -> None:
        super().__init__()
        self.model = model
        self.feature_levels = tuple(int(lv) for lv in feature_levels)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.model.feature_map(images)
        out = self.model.head(feats)
        return (out["cls"], out["reg"], out["kpt"], out["size"], *(feats[lv] for lv in self.feature_levels))


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _require_onnx():
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("ONNX export needs the 'onnx' and 'onnxscript' packages: "
                          "pip install 'demopose[export]'") from e
    return onnx


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _to_proto(model: nn.Module, args: tuple, input_names: list[str], output_names: list[str],
              dynamic_shapes: dict[str, Any], opset: int):
    """Trace with ``torch.export`` and translate to an ``onnx.ModelProto`` (weights inline)."""
    _require_onnx()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # exporter deprecation chatter
        for name in ("torch.onnx", "onnx_ir", "onnxscript"):  # exporter progress chatter
            logging.getLogger(name).setLevel(logging.WARNING)
        program = torch.onnx.export(model, args, dynamo=True, input_names=input_names,
                                    dynamic_shapes=dynamic_shapes, opset_version=opset, external_data=False,
                                    verbose=False)
    proto = program.model_proto
    _rename_outputs(proto, output_names)
    return proto


def _rename_values(proto, mapping: Mapping[str, str]) -> None:
    g = proto.graph
    for node in g.node:
        node.input[:] = [mapping.get(v, v) for v in node.input]
        node.output[:] = [mapping.get(v, v) for v in node.output]
    for coll in (g.input, g.output, g.value_info):
        for vi in coll:
            vi.name = mapping.get(vi.name, vi.name)
    for init in g.initializer:
        init.name = mapping.get(init.name, init.name)


def _rename_outputs(proto, names: Sequence[str]) -> None:
    """Give the graph outputs ``names``, first renaming any other value that already has one of them (the exporter
    names values after the traced ops, e.g. ``t`` for a transpose, and would otherwise produce a duplicate)."""
    g = proto.graph
    if len(names) != len(g.output):
        raise ExportError(f"export: {len(g.output)} graph outputs, {len(names)} names")
    current = [o.name for o in g.output]
    taken = {v for n in g.node for v in n.output} | {i.name for i in g.input} | {i.name for i in g.initializer}
    clash = {}
    for want in names:
        if want in taken and want not in current:
            new, k = f"{want}__value", 0
            while new in taken:
                k += 1
                new = f"{want}__value{k}"
            clash[want] = new
            taken.add(new)
    _rename_values(proto, clash)
    _rename_values(proto, {c: w for c, w in zip(current, names) if c != w})


def write_model(proto, path: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Set ``demopose.*`` metadata (JSON values) on an ``onnx.ModelProto`` and write it atomically to ``path``."""
    onnx = _require_onnx()
    keep = [p for p in proto.metadata_props if not p.key.startswith("demopose.")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in {"format": FORMAT, **metadata}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"demopose.{k}", json.dumps(_jsonable(v))
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return path


def read_metadata(path_or_proto) -> dict[str, Any]:
    """The ``demopose.*`` metadata of an exported file (or ``onnx.ModelProto``), keys without the prefix.

    Raises:
        ValueError: the file is not a readable ONNX model, or was not written by :mod:`demopose.export`.
    """
    onnx = _require_onnx()
    proto = path_or_proto
    if not hasattr(proto, "metadata_props"):
        p = Path(path_or_proto)
        if not p.is_file():
            raise FileNotFoundError(f"ONNX model {p} does not exist")
        try:
            proto = onnx.load_model(str(p), load_external_data=False)
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends: a damaged or foreign file
            raise ValueError(f"{p}: not a readable ONNX model: truncated or damaged? ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
    meta = {e.key[len("demopose."):]: json.loads(e.value) for e in proto.metadata_props
            if e.key.startswith("demopose.")}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path_or_proto if isinstance(path_or_proto, (str, Path)) else 'model'}: metadata "
                         f"'demopose.format' is {meta.get('format')!r}, expected {FORMAT!r} (export it with "
                         f"'demopose export')")
    return meta


def _verify(proto, module: nn.Module, args: tuple, input_names: Sequence[str], where: str, atol: float = 1e-3) -> float:
    """Run the exported graph in onnxruntime on the export's example inputs and compare with PyTorch.

    Returns the largest absolute difference; raises :class:`ExportError` above ``atol`` (catches silent
    graph-optimizer changes such as a dropped epsilon). Skipped (returns NaN) without onnxruntime.
    """
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - depends on the environment
        log.warning("%s: onnxruntime is not installed; the exported graph was not checked against PyTorch", where)
        return float("nan")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {n: a.detach().cpu().numpy() for n, a in zip(input_names, args)}
    got = sess.run(None, feed)
    from demopose.layers.knn import exact_distances

    with torch.no_grad(), exact_distances():  # the neighbour search the graph records
        ref = module(*args)
    worst = 0.0
    for name, g, r in zip([o.name for o in sess.get_outputs()], got, ref):
        r = r.detach().cpu().numpy()
        if g.shape != r.shape or not (abs(g - r) <= atol).all():
            diff = float(abs(g - r).max()) if g.shape == r.shape else float("inf")
            raise ExportError(f"{where}: the exported graph's output {name!r} differs from PyTorch on the example "
                              f"inputs (max |diff| {diff:.3g} > {atol}; shapes {g.shape} / {r.shape})")
        worst = max(worst, float(abs(g - r).max()) if g.size else 0.0)
    return worst


def _check_no_training_heads(proto, prefix: str, where: str) -> None:
    names = [i.name for i in proto.graph.initializer]
    bad = [n for n in names if any(f"{prefix}{head}." in n for head in TRAINING_ONLY)]
    if bad:  # would mean the traced path is the training one
        raise ExportError(f"{where}: training-only weights reached the exported graph: {bad[:5]}")


# --------------------------------------------------------------------------------------------------
# exporters
# --------------------------------------------------------------------------------------------------


def export_pose_graph(model: nn.Module, path: str | Path, name: str | None = None, n_points: int | None = None,
                      opset: int = OPSET, extra_metadata: Mapping[str, Any] | None = None) -> Path:
    """Export the inference graph of a :class:`~demopose.models.gpv.GPVPose` (module docstring).

    Args:
        model: the pose network (put in eval mode here).
        path: the ``.onnx`` file to write.
        name: registered model name recorded in the metadata.
        n_points: points per instance fixed in the graph (default ``model.config.num_points``).

    Returns:
        ``path``.
    """
    from demopose.models.gpv import GPVPose

    if not isinstance(model, GPVPose):
        raise ExportError(f"export_pose_graph: expected a GPVPose, got {type(model).__name__}")
    model = model.eval()
    cfg = model.config
    n = int(n_points or cfg.num_points)
    if n < model.backbone.min_points:
        raise ExportError(f"n_points: expected at least {model.backbone.min_points}, got {n}")
    device = next(model.parameters()).device
    B = 2
    g = torch.Generator().manual_seed(0)
    points = torch.randn(B, n, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 0.7])
    points[:, n - n // 8:] = points[:, : n // 8].clone()  # duplicate points, as sampling with replacement makes
    points = points.to(device)
    class_ids = torch.ones(B, dtype=torch.int64, device=device)
    sym = torch.zeros(B, dtype=torch.bool, device=device)
    mean_size = model.mean_sizes[class_ids].to(device)
    p1, p2 = model.backbone.draw_pool_indices(n, g, device)
    args: tuple = (points, class_ids, sym, mean_size, p1, p2)
    inputs = ["points", "class_ids", "y_symmetric", "mean_size", "pool_index_1", "pool_index_2"]
    batch = torch.export.Dim("instances", min=1, max=4096)
    dyn: dict[str, Any] = {"points": {0: batch}, "class_ids": {0: batch}, "y_symmetric": {0: batch},
                           "mean_size": {0: batch}, "pool_index_1": None, "pool_index_2": None}
    if model.fusion is not None:
        args = (*args, torch.randn(B, n, cfg.rgb_channels, generator=g).to(device))
        inputs.append("rgb_point_features")
        dyn["rgb_point_features"] = {0: batch}
    graph = PoseGraph(model).eval()
    proto = _to_proto(graph, args, inputs, ["R", "t", "size"], dyn, opset)
    where = f"export of {name or type(model).__name__}"
    _check_no_training_heads(proto, "model.", where)
    _verify(proto, graph, args, inputs, where)
    meta = {
        "graph": "pose", "model": name, "config": cfg.to_dict(), "category_table": cfg.category_table,
        "n_points": n, "pool_sizes": [int(p1.numel()), int(p2.numel())],
        "mean_sizes": model.mean_sizes, "y_symmetric_table": model.y_symmetric_table,
        "rgb_channels": int(cfg.rgb_channels) if model.fusion is not None else 0,
        "inputs": inputs, "outputs": ["R", "t", "size"],
    }
    return write_model(proto, path, meta | dict(extra_metadata or {}))


def export_mono_graph(model: nn.Module, path: str | Path, name: str | None = None,
                      feature_levels: Sequence[int] = (0,), opset: int = OPSET,
                      extra_metadata: Mapping[str, Any] | None = None) -> Path:
    """Export backbone + PAN + heads of a :class:`~demopose.models.mono.MonoDetector` (module docstring) at its
    ``config.input_size``; ``feature_levels`` are the PAN levels returned as ``feature_map`` (level 0) /
    ``feature_map_<level>``."""
    from demopose.models.mono import MonoDetector

    if not isinstance(model, MonoDetector):
        raise ExportError(f"export_mono_graph: expected a MonoDetector, got {type(model).__name__}")
    model = model.eval()
    levels = tuple(int(lv) for lv in feature_levels)
    for lv in levels:
        if not 0 <= lv < len(model.strides):
            raise ExportError(f"feature_levels: level {lv} out of range 0..{len(model.strides) - 1}")
    device = next(model.parameters()).device
    W, H = (int(v) for v in model.config.input_size)
    images = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        feats = model.feature_map(images)
    level_shapes = [list(f.shape[-2:]) for f in feats]
    fmap_names = ["feature_map" if lv == 0 else f"feature_map_{lv}" for lv in levels]
    outputs = ["cls", "reg", "kpt", "size", *fmap_names]
    dyn = {"images": {0: torch.export.Dim("images", min=1, max=256)}}
    graph = MonoGraph(model, levels).eval()
    proto = _to_proto(graph, (images,), ["images"], outputs, dyn, opset)
    _verify(proto, graph, (images,), ["images"], f"export of {name or type(model).__name__}")
    meta = {
        "graph": "mono", "model": name, "config": model.config, "category_table": model.config.category_table,
        "input_size": [W, H], "strides": list(model.strides), "level_shapes": level_shapes,
        "feature_levels": list(levels), "feature_outputs": fmap_names, "class_ids": model.class_ids.tolist(),
        "num_keypoints": int(model.head.num_keypoints), "inputs": ["images"], "outputs": outputs,
    }
    return write_model(proto, path, meta | dict(extra_metadata or {}))


def graph_paths(path: str | Path, kind: str) -> dict[str, Path]:
    """Files written for a model of ``kind`` (``pose``, ``mono`` or ``demopose``) at ``path``: one file, or
    ``<stem>.mono.onnx`` and ``<stem>.pose.onnx`` for DeMo-Pose."""
    p = Path(path)
    if kind != "demopose":
        return {kind: p}
    stem = p.name[: -len(".onnx")] if p.name.endswith(".onnx") else p.name
    return {"mono": p.with_name(f"{stem}.mono.onnx"), "pose": p.with_name(f"{stem}.pose.onnx")}


def model_kind(model: nn.Module) -> str:
    """``pose`` | ``mono`` | ``demopose`` for exportable models; raises :class:`ExportError` otherwise."""
    from demopose.models.gpv import GPVPose
    from demopose.models.mono import MonoDetector

    if isinstance(model, GPVPose):
        return "pose"
    if isinstance(model, MonoDetector):
        return "mono"
    try:
        from demopose.models.demopose import DeMoPose
    except ImportError:  # pragma: no cover
        DeMoPose = ()  # type: ignore[assignment]  # noqa: N806
    if DeMoPose and isinstance(model, DeMoPose):
        return "demopose"
    from demopose.models.cleanpose import CleanPose

    if isinstance(model, CleanPose):
        raise ExportError(f"cleanpose/agpose cannot be exported to ONNX: {CLEANPOSE_REASON}")
    raise ExportError(f"no ONNX export for {type(model).__name__}; exportable: GPVPose (gpv, hs_pose), "
                      f"MonoDetector (mono), DeMoPose (demopose)")


def export_model(model: nn.Module, path: str | Path, name: str | None = None,
                 opset: int = OPSET) -> dict[str, Path]:
    """Export any exportable model; returns ``{graph: file}`` (``pose`` / ``mono``, both for DeMo-Pose)."""
    kind = model_kind(model)
    paths = graph_paths(path, kind)
    if kind == "pose":
        export_pose_graph(model, paths["pose"], name, opset=opset)
    elif kind == "mono":
        export_mono_graph(model, paths["mono"], name, opset=opset)
    else:
        common = {"demopose": {"model": name, "mono": paths["mono"].name, "pose": paths["pose"].name,
                               "feature_levels": list(model.levels), "fusion": model.config.fusion}}
        if model.config.fusion is None:
            raise ExportError("DeMoPose without fusion is GPV-Pose + MPL: export its pose network "
                              "(model.pose) as a gpv graph")
        export_mono_graph(model.mono, paths["mono"], name, feature_levels=model.levels, opset=opset,
                          extra_metadata=common)
        export_pose_graph(model.pose, paths["pose"], name, opset=opset, extra_metadata=common)
    return paths


def export_checkpoint(checkpoint: str | Path, path: str | Path | None = None, opset: int = OPSET) -> dict[str, Path]:
    """Rebuild the model of a checkpoint (:func:`demopose.engine.checkpoint.load_model`) and export it to
    ``path`` (default: the checkpoint's path with the suffix ``.onnx``)."""
    from demopose.engine.checkpoint import load_checkpoint, load_model

    ck = Path(checkpoint)
    state = load_checkpoint(ck)
    name = ((state.get("config") or {}).get("model") or {}).get("name")
    model = load_model(ck)
    return export_model(model, Path(path) if path else ck.with_suffix(".onnx"), name=name, opset=opset)
