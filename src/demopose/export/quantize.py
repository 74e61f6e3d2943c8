"""int8 quantisation of exported graphs with onnxruntime, calibrated on frames of a NOCS-layout dataset.

Static quantisation (default) calibrates activation ranges (MinMax) on real inputs of the graph — instances
sampled from the frames of a dataset (ground-truth masks, the inference point sampling) for a pose graph,
letterboxed frames for a mono graph — and writes a QDQ model: int8 weights (per output channel) and uint8
activations around the quantised operators (the u8 x s8 product is the one x86 CPUs run fast). Dynamic
quantisation (the fallback, no data needed) stores int8 weights and quantises activations on the fly; it leaves
convolutions float32 (:data:`DYNAMIC_OPS`), because onnxruntime's dynamic ``ConvInteger`` runs the detector
several times slower than float32 (BENCHMARKS.md, "End to end"), so a detector graph stays float32 in dynamic
mode.

Only the *weight-bearing* operators are quantised: ``Conv``, ``Gemm`` and ``MatMul`` nodes whose weight is a
constant of the graph and whose products sum at least :data:`MIN_INNER` terms. Everything geometric stays
float32: neighbour search (a ``MatMul`` of two point sets), neighbour directions, pooling, rotation recovery —
int8 coordinates (about 1 mm steps over an object) would change the neighbours and the poses far more than
int8 features do.

onnxruntime's QDQ quantiser puts the quantise / dequantise pair of an activation on the *value* and hands the
dequantised copy to every node that reads it, quantised or not. The exporter merges equal subexpressions, so a
quantised layer can share its input with geometry: gpv's translation-head ``xyz`` product read the same
``(B·N, 3)`` reshape of the centred points as the 3D-GC neighbour gather, whose directions then came from int8
coordinates (0.24 m of translation error on a REAL275 fixture instance; that 3-term product stays float32
by :data:`MIN_INNER`, but other graphs can share inputs the same way). For static mode,
:func:`isolate_quantized_inputs` therefore gives the quantised nodes their own copy (an ``Identity``, removed
again by onnxruntime's graph optimiser when the session is built) of any input that another node also reads; the
other readers keep the float value. (The dynamic quantiser already rewires only the quantised node.)

The measured accuracy cost is in ``benchmarks/results/onnx_int8_accuracy.json``
(``benchmarks/onnx_int8_accuracy.py``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from demopose._cpuinfo import cpuinfo_field
from demopose.export.onnx_export import read_metadata, write_model

__all__ = ["calibration_feeds", "cpu_has_vnni", "feed_reader", "isolate_quantized_inputs", "quantize_graph",
           "weight_nodes"]

log = logging.getLogger(__name__)

QUANT_OPS = ("Conv", "Gemm", "MatMul")
DYNAMIC_OPS = ("Gemm", "MatMul")
"""The operators dynamic mode quantises: its ``ConvInteger`` is several times slower than a float ``Conv`` on CPU
(module docstring)."""
# Weight layers summing fewer terms per output stay float: int8 saves arithmetic in proportion to that count,
# while the (de)quantisation of the output costs the same (gpv's 3-wide neighbour-direction products would
# quantise tens of millions of outputs per frame to save almost nothing).
MIN_INNER = 16


def weight_nodes(proto, min_inner: int = MIN_INNER, op_types: Sequence[str] = QUANT_OPS) -> list[str]:
    """Names of the ``op_types`` nodes (default ``Conv`` / ``Gemm`` / ``MatMul``) of ``proto`` whose second input
    is a graph constant (an initializer or a ``Constant`` node) — the layers with learned weights — and whose
    products sum over at least ``min_inner`` terms (module docstring: a narrow product gains nothing from int8)."""
    consts = _constant_shapes(proto)
    out = []
    for n in proto.graph.node:
        if n.op_type not in op_types or len(n.input) < 2 or n.input[1] not in consts:
            continue
        if _inner_size(n, consts[n.input[1]]) >= min_inner:
            out.append(n.name)
    return out


def _inner_size(node, w_shape: Sequence[int]) -> int:
    """Terms summed per output of a weight layer: ``C_in/groups · kh · kw`` (Conv), ``K`` (Gemm / MatMul); a
    weight of unknown shape counts as wide."""
    if len(w_shape) < 2:
        return 1 << 30
    if node.op_type == "Conv":
        return int(np.prod(w_shape[1:]))
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return int(w_shape[1] if trans_b else w_shape[0])
    return int(w_shape[-2])


def _constant_shapes(proto) -> dict[str, list[int]]:
    shapes = {i.name: list(i.dims) for i in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "Constant":
            value = next((a.t for a in n.attribute if a.name == "value"), None)
            for o in n.output:
                shapes[o] = list(value.dims) if value is not None else []
    return shapes


def _constants(proto) -> set[str]:
    return set(_constant_shapes(proto))


def isolate_quantized_inputs(proto, nodes: Sequence[str], suffix: str = "__int8_input") -> list[str]:
    """Give the nodes ``nodes`` (those to be quantised) a private copy of every activation input they share with
    another node or with the graph outputs, in place, so that the quantiser's QDQ pair on that input reaches only
    them (module docstring): ``Identity(v) -> v + suffix`` is inserted before the first of them that reads ``v``
    and they read the copy; the other readers of ``v`` keep the float value.

    Only the data and weight inputs (the first two) are considered, and not the graph's constants (the weights).

    Returns:
        the names of the values that were copied.
    """
    wanted = set(nodes)
    consts = _constants(proto)
    g = proto.graph
    readers: dict[str, list[int]] = {}
    for i, n in enumerate(g.node):
        for v in set(n.input):
            if v:
                readers.setdefault(v, []).append(i)
    outputs = {o.name for o in g.output}
    taken = {v for n in g.node for v in (*n.input, *n.output)} | {i.name for i in g.input} | consts
    copies: dict[str, str] = {}  # value -> private copy
    first: dict[str, int] = {}  # value -> index of the first quantised reader
    for i, n in enumerate(g.node):
        if n.name not in wanted:
            continue
        for v in n.input[:2]:
            if not v or v in consts or v in copies:
                continue
            if v in outputs or any(g.node[j].name not in wanted for j in readers.get(v, ())):
                new, k = f"{v}{suffix}", 0
                while new in taken:
                    k += 1
                    new = f"{v}{suffix}{k}"
                taken.add(new)
                copies[v], first[v] = new, i
    if not copies:
        return []
    inserts: dict[int, list] = {}
    for v, new in copies.items():
        inserts.setdefault(first[v], []).append(_onnx_node("Identity", [v], [new], name=new))
    rebuilt = []
    for i, n in enumerate(g.node):
        rebuilt.extend(inserts.get(i, ()))
        if n.name in wanted:
            n.input[:2] = [copies.get(v, v) for v in n.input[:2]]
        rebuilt.append(n)
    del g.node[:]
    g.node.extend(rebuilt)
    return list(copies)


def _onnx_node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str):
    """An ``onnx.NodeProto`` (onnx imported lazily: it is an optional dependency)."""
    import onnx

    return onnx.helper.make_node(op_type, list(inputs), list(outputs), name=name)


def feed_reader(feeds: Sequence[dict[str, np.ndarray]]):
    """An ``onnxruntime.quantization.CalibrationDataReader`` over a list of input dicts (name -> array)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _FeedReader(CalibrationDataReader):
        def __init__(self, items: Sequence[dict[str, np.ndarray]]) -> None:
            self.items = list(items)
            self._it: Iterator[dict[str, np.ndarray]] = iter(self.items)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(self.items)

        def __len__(self) -> int:
            return len(self.items)

    return _FeedReader(feeds)


def calibration_feeds(path: str | Path, data_root: str | Path, subset: str = "real_train", frames: int = 32,
                      seed: int = 0, mono_path: str | Path | None = None, progress: bool = True
                      ) -> list[dict[str, np.ndarray]]:
    """Inputs of the exported graph ``path`` for ``frames`` frames of a NOCS-layout dataset (evenly spread over
    the subset): one batch of all the frame's ground-truth instances for a pose graph, the letterboxed frame for a
    mono graph.

    A DeMo-Pose pose graph also needs ``rgb_point_features``: they come from the fp32 mono graph ``mono_path``
    (default: the file named in the pose graph's metadata, next to it).

    Raises:
        ValueError: no usable instance in the chosen frames.
    """
    from tqdm.auto import tqdm

    from demopose.categories import get_table
    from demopose.data.instances import collate_instances, sample_instance
    from demopose.data.nocs import NOCSDataset
    from demopose.engine.build import limit_frames
    from demopose.pipeline import gt_instances

    meta = read_metadata(path)
    table = get_table(meta["category_table"])
    ds = NOCSDataset(data_root, subset, categories=table, load_nocs=False)
    if len(ds) == 0:
        raise ValueError(f"{data_root}: subset {subset!r} has no frames")
    idx = limit_frames(len(ds), int(frames))
    feeds: list[dict[str, np.ndarray]] = []
    if meta["graph"] == "mono":
        from demopose.models.mono import letterbox_frame

        for i in tqdm(idx, desc="calibration frames", unit="frame", disable=not progress):
            image, _ = letterbox_frame(ds[int(i)], tuple(meta["input_size"]))
            feeds.append({"images": image[None]})
        return feeds
    from demopose.export.ort_backend import OrtMonoDetector, OrtPoseModel
    from demopose.layers.feature_sampling import sample_point_features

    pose = OrtPoseModel(path, threads=1)
    mono = None
    if pose.rgb_channels:  # DeMo-Pose: the fp32 detector graph gives the point features
        link = meta.get("demopose") or {}
        if mono_path is None and not link:
            raise ValueError(f"{path}: a fusion pose graph; pass the detector graph (mono_path)")
        mono = OrtMonoDetector(mono_path or Path(path).with_name(link["mono"]), threads=1)
    gen = torch.Generator().manual_seed(int(seed))
    image_size = tuple(mono.config.input_size) if mono is not None else None
    for i in tqdm(idx, desc="calibration frames", unit="frame", disable=not progress):
        frame = ds[int(i)]
        inst = gt_instances(frame)
        rng = np.random.default_rng(int(seed) + int(i))
        samples = [s for j in range(len(inst.class_ids))
                   if (s := sample_instance(frame, inst.masks[j], int(inst.class_ids[j]), rng, pose.n_points,
                                            image_size=image_size)) is not None]
        if not samples:
            continue
        batch = collate_instances(samples)
        p1, p2 = pose.draw_pool_indices(gen)
        feed: dict[str, Any] = {"points": batch["points"].numpy(), "class_ids": batch["class_ids"].numpy(),
                                "y_symmetric": batch["y_symmetric"].numpy(),
                                "mean_size": batch["mean_size"].numpy().astype(np.float32),
                                "pool_index_1": p1.numpy(), "pool_index_2": p2.numpy()}
        if mono is not None:
            from demopose.data.detection_samples import letterbox_image

            image = torch.from_numpy(letterbox_image(frame.rgb, image_size))[None]
            rgb = sample_point_features(mono.feature_map(image), batch["image_pixels"],
                                        torch.zeros(len(samples), dtype=torch.int64), tuple(image.shape[-2:]))
            feed["rgb_point_features"] = rgb.numpy()
        feeds.append(feed)
    if not feeds:
        raise ValueError(f"{data_root} ({subset}): no instance with enough valid depth in the {len(idx)} "
                         f"calibration frames")
    return feeds


def cpu_has_vnni() -> bool:
    """Whether this CPU has AVX-512 VNNI or AVX-VNNI (``/proc/cpuinfo`` flags; False where unknown)."""
    flags = (cpuinfo_field("flags") or "").split()
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _quantize(mode: str, src: Path, dst: Path, feeds, per_channel: bool, nodes: list[str],
              reduce_range: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    if mode == "static":
        # uint8 activations x int8 weights: x86's fast integer product (VPDPBUSD); int8 x int8 runs a slow path
        # (benchmarks/results/int8_matmul_rates.json). Without VNNI, u8 x s8 uses VPMADDUBSW, whose 16-bit
        # pair sums can saturate: 7-bit weights (reduce_range) avoid that.
        quantize_static(str(src), str(dst), feed_reader(feeds), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    else:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
                         op_types_to_quantize=list(DYNAMIC_OPS))


def quantize_graph(src: str | Path, dst: str | Path, mode: str = "static",
                   feeds: Sequence[dict[str, np.ndarray]] | None = None, per_channel: bool = True,
                   metadata: dict[str, Any] | None = None, reduce_range: bool | None = None) -> Path:
    """Quantise the exported graph ``src`` to int8 and write ``dst`` atomically (metadata kept, plus
    ``demopose.quantization``).

    Args:
        mode: ``static`` (needs ``feeds``: calibration inputs, e.g. :func:`calibration_feeds`) or ``dynamic``.
        per_channel: per-output-channel weight scales (static mode).
        metadata: ``demopose.*`` entries to replace (e.g. the sibling file names of a DeMo-Pose pair).
        reduce_range: 7-bit weights in static mode, for x86 CPUs without VNNI (see :func:`_quantize`); default:
            True when this machine has no VNNI (:func:`cpu_has_vnni`).

    Returns:
        ``dst``.
    """
    import onnx

    if mode not in ("static", "dynamic"):
        raise ValueError(f"mode: expected 'static' or 'dynamic', got {mode!r}")
    if mode == "static" and not feeds:
        raise ValueError("static int8 quantisation needs calibration inputs (--calibration DATA_ROOT); "
                         "or use dynamic quantisation (--int8-mode dynamic)")
    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = Path(src)
    meta = read_metadata(src)
    with tempfile.TemporaryDirectory(prefix="demopose-quant-") as tmp:
        # onnxruntime's graph optimisations first: they fold weight computations left in the graph (e.g. BatchNorm
        # folded into a linear layer at run time) into constants, so those layers are quantised too
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        proto = onnx.load_model(str(pre))
        # stale intermediate shapes left by the optimiser make the quantiser's own shape inference fail
        # ("inferred shape and existing shape differ"); it re-infers them
        del proto.graph.value_info[:]
        nodes = weight_nodes(proto, op_types=QUANT_OPS if mode == "static" else DYNAMIC_OPS)
        if not nodes and (mode == "static" or not weight_nodes(proto)):
            raise ValueError(f"{src}: no Conv/Gemm/MatMul node with constant weights to quantise")
        isolated: list[str] = []
        if nodes:
            isolated = isolate_quantized_inputs(proto, nodes) if mode == "static" else []
            onnx.save_model(proto, str(pre))
            out = Path(tmp) / "int8.onnx"
            root_log = logging.getLogger()  # the quantiser reports every rescaled bias on the root logger at INFO
            level = root_log.level
            root_log.setLevel(max(level, logging.WARNING))
            try:
                _quantize(mode, pre, out, feeds, per_channel, nodes, reduce_range)
            finally:
                root_log.setLevel(level)
            q = onnx.load_model(str(out))
        else:  # dynamic mode, a graph whose weights are all convolutions (a detector): kept float32
            log.info("%s: no Gemm/MatMul weight layer; dynamic int8 leaves convolutions float32, so the graph is "
                     "written unchanged", src)
            q = onnx.load_model(str(src))
    info = {"mode": mode, "nodes": len(nodes), "per_channel": bool(per_channel) if mode == "static" else False,
            "activations": "uint8" if mode == "static" else "uint8 (dynamic)",
            "reduce_range": bool(reduce_range) if mode == "static" else False,
            "calibration_batches": len(feeds) if mode == "static" and feeds else 0, "source": src.name,
            "isolated_inputs": len(isolated)}
    if not nodes:
        info["note"] = "convolutions left float32 (ConvInteger is slower)"
    meta = {k: v for k, v in meta.items() if k != "format"} | {"quantization": info} | dict(metadata or {})
    return write_model(q, dst, meta)
