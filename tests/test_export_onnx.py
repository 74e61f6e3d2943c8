"""ONNX export, onnxruntime backends and int8: parity with PyTorch (fp32 poses to 1e-4), dynamic instance count,
training-only heads absent, the ``demopose export`` command.

Each graph is exported once per module (an export takes tens of seconds on a small CPU) and shared by the tests.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from contract_checks import check_detector, check_pose_model, check_pose_prediction, pose_batch  # noqa: E402
from demopose.cli import main  # noqa: E402
from demopose.data.instances import collate_instances, sample_instance  # noqa: E402
from demopose.data.nocs import NOCSDataset, load_frame  # noqa: E402
from demopose.engine.checkpoint import CONFIG_VERSION, load_model, save_checkpoint  # noqa: E402
from demopose.evaluation import NOCSEvaluator  # noqa: E402
from demopose.export import (  # noqa: E402
    ExportError,
    OrtDeMoPose,
    OrtMonoDetector,
    OrtPoseModel,
    export_model,
    load_ort_model,
    read_metadata,
)
from demopose.export.quantize import quantize_graph, weight_nodes  # noqa: E402
from demopose.layers.knn import exact_distances  # noqa: E402
from demopose.models import build_model  # noqa: E402
from demopose.pipeline import gt_instances, run_inference  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(__file__).parent / "fixtures" / "nocs_sample" / "Real" / "test" / "scene_1" / "0000"
MONO_CK = ROOT / "checkpoints" / "mono_synth_small.pt"
GPV_CK = ROOT / "checkpoints" / "gpv_synth_small.pt"
TOL = 1e-4


def _max_diff(a, b) -> float:
    return max(float((a.R - b.R).abs().max()), float((a.t - b.t).abs().max()), float((a.size - b.size).abs().max()))


def _random_batch(B: int, n: int = 1028, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(B, n, 3, generator=g) * torch.tensor([0.04, 0.06, 0.03]) + torch.tensor([0.05, -0.02, 0.7])
    pts[:, -100:] = pts[:, :100]  # duplicates, as sampling with replacement makes for small masks
    return {"points": pts, "class_ids": torch.randint(1, 7, (B,), generator=g)}


@pytest.fixture(scope="module")
def frame():
    return load_frame(REAL)


def _fixture_batch(frame, B: int, seed: int = 0, image_size=None) -> dict[str, torch.Tensor]:
    inst = gt_instances(frame)
    rng = np.random.default_rng(seed)
    samples = [sample_instance(frame, inst.masks[j], int(inst.class_ids[j]), rng, image_size=image_size)
               for j in range(B)]
    return collate_instances(samples)


# --------------------------------------------------------------------------------------------------
# gpv: one export through the CLI (fp32 + static int8 calibrated on a generated dataset)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpv_export(tmp_path_factory, tiny_synth):
    """The shipped gpv_small checkpoint exported by the CLI: fp32 + static int8 calibrated on generated frames."""
    import shutil

    tmp = tmp_path_factory.mktemp("gpv_export")
    ck = tmp / "gpv.pt"
    shutil.copyfile(GPV_CK, ck)
    data = tiny_synth(4, 2)
    rc = main(["export", str(ck), "--format", "onnx", "--int8", "--calibration", str(data), "--calib-frames", "2",
               "--no-progress"])
    assert rc == 0
    return {"model": load_model(ck), "fp32": tmp / "gpv.onnx", "int8": tmp / "gpv.int8.onnx", "dir": tmp,
            "data": data, "checkpoint": ck}


def test_ort_pose_model_keeps_the_contract(gpv_export):
    model, ortm = gpv_export["model"], OrtPoseModel(gpv_export["fp32"], threads=1)
    check_pose_model(ortm)
    assert ortm.config == model.config and ortm.categories is model.categories
    assert (ortm.image_size, ortm.rgb_size, ortm.mesh_points, ortm.own_detector) == (None, None, 0, None)
    check_pose_prediction(ortm(pose_batch(ortm, N=1028), generator=torch.Generator().manual_seed(0)), 2)


def test_pose_graph_interface_and_no_training_heads(gpv_export):
    model, path = gpv_export["model"], gpv_export["fp32"]
    assert any(k.startswith("face_recon.") for k in model.state_dict())  # training-only voting / recon heads
    proto = onnx.load(str(path))
    names = [i.name for i in proto.graph.initializer]
    assert not [n for n in names if "mesh_head" in n or "face_recon" in n]
    assert any("rot_green" in n for n in names) or any("backbone" in n for n in names)
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert list(inputs) == ["points", "class_ids", "y_symmetric", "mean_size", "pool_index_1", "pool_index_2"]
    assert isinstance(inputs["points"][0], str) and inputs["points"][1:] == [1028, 3]  # dynamic instances
    assert inputs["pool_index_1"] == [257] and inputs["pool_index_2"] == [64]
    assert [o.name for o in proto.graph.output] == ["R", "t", "size"]
    meta = read_metadata(path)
    assert meta["graph"] == "pose" and meta["model"] == "gpv_small" and meta["n_points"] == 1028


@pytest.mark.parametrize("B", [1, 5])
def test_pose_parity_random_inputs(gpv_export, B):
    model, ortm = gpv_export["model"], OrtPoseModel(gpv_export["fp32"], threads=1)
    batch = _random_batch(B, seed=B)
    with torch.no_grad(), exact_distances():
        ref = model(batch, generator=torch.Generator().manual_seed(7))
    got = ortm(batch, generator=torch.Generator().manual_seed(7))
    assert got.R.shape == (B, 3, 3) and got.t.shape == (B, 3) and got.size.shape == (B, 3)
    assert _max_diff(ref, got) < TOL


@pytest.mark.parametrize("B", [1, 5])
def test_pose_parity_on_real275_fixture_instances(gpv_export, frame, B):
    model, ortm = gpv_export["model"], OrtPoseModel(gpv_export["fp32"], threads=1)
    batch = _fixture_batch(frame, B)
    assert batch["points"].shape == (B, 1028, 3)
    with torch.no_grad(), exact_distances():  # the graph's neighbour search (see demopose.layers.knn)
        ref = model(batch, generator=torch.Generator().manual_seed(3))
    got = ortm(batch, generator=torch.Generator().manual_seed(3))
    assert _max_diff(ref, got) < TOL
    # explicit pooling subsets give the same result as the generator's draw
    pools = model.backbone.draw_pool_indices(1028, torch.Generator().manual_seed(3))
    again = ortm({**batch, "pool_indices": pools})
    assert _max_diff(got, again) == 0.0


def test_run_inference_runs_the_ort_backend_unchanged(gpv_export):
    frames = NOCSDataset(gpv_export["data"], "real_test", load_nocs=False)
    model, ortm = gpv_export["model"], load_ort_model(gpv_export["fp32"], threads=1)
    assert isinstance(ortm, OrtPoseModel) and ortm.eval() is ortm and not ortm.training
    out = {}
    for name, m in (("torch", model), ("ort", ortm)):
        ev = NOCSEvaluator(model.categories, iou_mode="nocs")
        with exact_distances():
            out[name] = run_inference(m, frames, gt_instances, ev, results_dir=gpv_export["dir"] / name,
                                      progress=False)
    assert out["torch"].keys() == out["ort"].keys() and out["torch"]
    for k, v in out["torch"].items():
        assert abs(v - out["ort"][k]) < 1e-6, k


def test_int8_static_graph_runs_close_to_fp32(gpv_export, frame):
    path = gpv_export["int8"]
    meta = read_metadata(path)
    assert meta["quantization"]["mode"] == "static" and meta["quantization"]["calibration_batches"] == 2
    from demopose.export.quantize import cpu_has_vnni

    assert meta["quantization"]["reduce_range"] == (not cpu_has_vnni())  # 7-bit weights only without VNNI
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert sum(i.data_type == onnx.TensorProto.INT8 for i in proto.graph.initializer) >= 10  # int8 weights
    zero_points = [i for i in proto.graph.initializer if i.name.endswith("_zero_point")]
    assert any(i.data_type == onnx.TensorProto.UINT8 for i in zero_points)  # uint8 activations (x86's fast u8s8)
    batch = _fixture_batch(frame, 5)  # real instances (int8 ranges are calibrated on real data)
    fp = OrtPoseModel(gpv_export["fp32"], threads=1)(batch, generator=torch.Generator().manual_seed(1))
    q = OrtPoseModel(path, threads=1)(batch, generator=torch.Generator().manual_seed(1))
    eye = torch.eye(3).expand(5, 3, 3)
    assert torch.allclose(q.R @ q.R.transpose(1, 2), eye, atol=1e-4)
    assert float((q.t - fp.t).norm(dim=1).max()) < 0.05  # metres (max 48 mm over 349 instances: onnx_int8_accuracy)
    assert float((q.size - fp.size).abs().max()) < 0.03


def test_dynamic_int8_fallback(gpv_export, tmp_path):
    out = quantize_graph(gpv_export["fp32"], tmp_path / "dyn.onnx", "dynamic")
    assert read_metadata(out)["quantization"]["mode"] == "dynamic"
    assert "DynamicQuantizeLinear" in {n.op_type for n in onnx.load(str(out)).graph.node}
    pred = OrtPoseModel(out, threads=1)(_random_batch(2))
    assert torch.isfinite(pred.R).all() and torch.isfinite(pred.t).all()
    with pytest.raises(ValueError, match="calibration"):
        quantize_graph(gpv_export["fp32"], tmp_path / "x.onnx", "static", feeds=None)


def _shared_input_graph():
    """``x (N, 32)`` read by a weight layer (``x @ W``) and by geometry (``x * 1000``): the exporter's merged
    subexpressions make such graphs (gpv: the xyz product and the neighbour gather share the centred points)."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(32, 16)).astype(np.float32), "W")
    k = numpy_helper.from_array(np.array(1000.0, dtype=np.float32), "k")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["feat"], name="layer"),
         helper.make_node("Mul", ["x", "k"], ["geo"], name="geometry")],
        "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32])],
        [helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["n", 16]),
         helper.make_tensor_value_info("geo", TensorProto.FLOAT, ["n", 32])], [w, k])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def test_static_int8_keeps_shared_inputs_float_for_other_readers(tmp_path):
    """The QDQ pair of a quantised layer's input reaches only that layer; other readers of the value keep it
    float (without the copy, onnxruntime hands them the dequantised int8 value)."""
    from demopose.export.onnx_export import write_model
    from demopose.export.quantize import isolate_quantized_inputs

    proto = _shared_input_graph()
    assert isolate_quantized_inputs(proto, ["layer"]) == ["x"]
    by_name = {n.name: n for n in proto.graph.node}
    assert list(by_name["layer"].input) == ["x__int8_input", "W"] and list(by_name["geometry"].input) == ["x", "k"]
    assert [n.op_type for n in proto.graph.node] == ["Identity", "MatMul", "Mul"]  # still topologically sorted
    assert isolate_quantized_inputs(_shared_input_graph(), ["layer", "geometry"]) == []  # no float reader left

    src = write_model(_shared_input_graph(), tmp_path / "shared.onnx", {"graph": "test"})
    rng = np.random.default_rng(1)
    feeds = [{"x": (rng.normal(size=(64, 32)) * 0.1).astype(np.float32)} for _ in range(4)]
    out = quantize_graph(src, tmp_path / "shared.int8.onnx", "static", feeds)
    assert read_metadata(out)["quantization"]["isolated_inputs"] == 1
    x = feeds[0]["x"]
    feat, geo = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_array_equal(geo, x * np.float32(1000.0))  # float coordinates, bit for bit
    assert 0 < float(np.abs(feat - x @ onnx.numpy_helper.to_array(proto.graph.initializer[0])).max()) < 0.05


def test_weight_nodes_are_the_learned_layers(gpv_export):
    proto = onnx.load(str(gpv_export["fp32"]))
    names = set(weight_nodes(proto))
    consts = {i.name for i in proto.graph.initializer}
    for n in proto.graph.node:
        if n.name in names:
            assert n.op_type in ("Conv", "Gemm", "MatMul") and n.input[1] in consts | {
                o for m in proto.graph.node if m.op_type == "Constant" for o in m.output}
    # the kNN distance product (two activations) stays float
    assert any(n.op_type == "MatMul" and n.name not in names for n in proto.graph.node)
    # so do the 3-wide products (3D-GC neighbour directions x support directions, the heads' xyz columns)
    narrow = set(weight_nodes(proto, min_inner=1)) - names
    assert narrow and all(n.op_type == "MatMul" for n in proto.graph.node if n.name in narrow)
    assert len(weight_nodes(proto, min_inner=10**6)) == 0


def test_ort_pose_model_input_errors(gpv_export):
    ortm = OrtPoseModel(gpv_export["fp32"], threads=1)
    with pytest.raises(ValueError, match="1028"):
        ortm(_random_batch(2, n=512))
    with pytest.raises(ValueError, match="class_ids"):
        ortm({**_random_batch(2), "class_ids": torch.tensor([0, 7])})
    with pytest.raises(KeyError, match="points"):
        ortm({"class_ids": torch.tensor([1])})
    with pytest.raises(ValueError, match="expected a mono graph"):
        OrtMonoDetector(gpv_export["fp32"])


def test_cli_export_errors(gpv_export, tmp_path, capsys):
    assert main(["export", str(gpv_export["checkpoint"]), "--int8"]) == 1
    assert "--calibration" in capsys.readouterr().err
    assert main(["export", str(gpv_export["checkpoint"]), "--out", str(tmp_path / "x.bin")]) == 1
    assert ".onnx" in capsys.readouterr().err
    # cleanpose: refused with the reason, before any tracing
    torch.manual_seed(0)
    cp = build_model("cleanpose_small")
    ck = tmp_path / "cp.pt"
    save_checkpoint(ck, {"model": cp.state_dict(), "config": {"model": {"name": "cleanpose_small", "args": {}}},
                         "config_version": CONFIG_VERSION})
    assert main(["export", str(ck)]) == 1
    err = capsys.readouterr().err
    assert "farthest point sampling" in err and "PyTorch backend" in err
    assert not (tmp_path / "cp.onnx").exists()
    with pytest.raises(ExportError, match="cleanpose"):
        export_model(cp, tmp_path / "cp.onnx")


# --------------------------------------------------------------------------------------------------
# mono: the trained checkpoint, raw outputs and post-processed detections / poses
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mono_export(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mono_export")
    model = load_model(MONO_CK)
    paths = export_model(model, tmp / "mono.onnx", name="mono_small")
    return model, paths["mono"]


def test_mono_graph_outputs_match_torch(mono_export, frame):
    from demopose.models.mono import letterbox_frame

    model, path = mono_export
    ortm = OrtMonoDetector(path, threads=1)
    image, _ = letterbox_frame(frame, model.config.input_size)
    x = torch.from_numpy(image)[None]
    for B in (1, 5):
        xb = x.repeat(B, 1, 1, 1) + 0.05 * torch.arange(B).view(B, 1, 1, 1)  # 5 different images
        with torch.no_grad():
            pred = model({"image": xb}).head()
            fmap = model.feature_map(xb)[0]
        out = ortm.run(xb)
        for k in ("cls", "reg", "kpt", "size"):
            assert out[k].shape == pred[k].shape
            assert float((out[k] - pred[k]).abs().max()) < TOL, k
        assert float((out["feature_map"] - fmap).abs().max()) < TOL
    meta = read_metadata(path)
    assert meta["graph"] == "mono" and meta["input_size"] == list(model.config.input_size)


def test_dynamic_int8_leaves_convolutions_float(mono_export, tmp_path):
    """Dynamic int8 quantises only Gemm / MatMul (ConvInteger is slower than a float Conv on CPU): the detector,
    all convolutions, is written unchanged and says so."""
    _, path = mono_export
    out = quantize_graph(path, tmp_path / "mono.dyn.onnx", "dynamic")
    info = read_metadata(out)["quantization"]
    assert info["mode"] == "dynamic" and info["nodes"] == 0 and "float32" in info["note"]
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "ConvInteger" not in ops and "Conv" in ops


def test_mono_detections_and_poses_match_torch(mono_export, frame):
    model, path = mono_export
    ortm = load_ort_model(path, threads=1)
    assert isinstance(ortm, OrtMonoDetector)
    check_detector(ortm)  # the Detector contract, with the torch model's config, categories and image size
    assert ortm.config == model.config and ortm.categories is model.categories and ortm.image_size == model.image_size
    a, b = model.detect_frame(frame), ortm.detect_frame(frame)
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    for k in ("boxes", "scores", "keypoints", "rel_size"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), atol=1e-3, err_msg=k)  # pixels / unitless
    pa, pb = model.predict_frame(frame), ortm.predict_frame(frame)
    np.testing.assert_allclose(pa.t, pb.t, atol=1e-3)
    # both keep the PAN maps of their detection run, for DeMo-Pose's fusion (stride-8 level 0 in each)
    assert sorted(b.features) == list(ortm.feature_levels) and 0 in a.features
    W, H = model.config.input_size
    assert tuple(b.features[0].shape) == tuple(a.features[0].shape) == (1, model.config.neck_channels, H // 8, W // 8)
    assert float((b.features[0] - a.features[0]).abs().max()) < TOL


# --------------------------------------------------------------------------------------------------
# demopose: two graphs, the feature sampling between them in torch
# --------------------------------------------------------------------------------------------------


def test_point_feature_bridge_matches_demopose(frame):
    """The sampling between the two graphs (run by OrtDeMoPose outside onnxruntime) is DeMoPose.point_features."""
    from demopose.layers.feature_sampling import sample_point_features

    torch.manual_seed(0)
    model = build_model("demopose_small", mono_args={"input_size": (64, 64)}, mesh_points=0).eval()
    g = torch.Generator().manual_seed(0)
    images, pixels = torch.randn(2, 3, 64, 64, generator=g), torch.rand(3, 50, 2, generator=g) * 63
    index = torch.tensor([0, 1, 0])
    with torch.no_grad():
        want = model.point_features(images, pixels, index)
        feats = [model.mono.inference_feature_map(images)[lv] for lv in model.levels]
    assert torch.equal(sample_point_features(feats, pixels, index, (64, 64)), want)


@pytest.mark.slow  # two exports (~35 s on a quiet 2-core CPU); the gpv and mono graphs are checked above
def test_demopose_two_graph_parity(tmp_path, frame):
    torch.manual_seed(0)
    model = build_model("demopose_small", mono_args={"input_size": (64, 64)}, mesh_points=32).eval()
    paths = export_model(model, tmp_path / "dp.onnx", name="demopose_small")
    assert set(paths) == {"mono", "pose"} and all(p.is_file() for p in paths.values())
    assert model.pose.mesh_head is not None  # the training-only Mesh-Point head exists in the model ...
    pose_proto = onnx.load(str(paths["pose"]))
    assert "rgb_point_features" in [i.name for i in pose_proto.graph.input]
    assert not [i.name for i in pose_proto.graph.initializer if "mesh_head" in i.name]  # ... not in the graph
    ortm = load_ort_model(tmp_path / "dp.onnx", threads=1)
    assert isinstance(ortm, OrtDeMoPose) and ortm.image_size == (64, 64)
    check_pose_model(ortm)
    assert ortm.own_detector is ortm.mono and ortm.categories is model.categories
    rebuilt = build_model(ortm.config.pose_model, **{**ortm.config.pose_args, "fusion": ortm.config.fusion,
                                                     "rgb_channels": model.pose.config.rgb_channels,
                                                     "mesh_points": ortm.config.mesh_points,
                                                     "mpl_weight": ortm.config.mpl_weight})
    assert rebuilt.config == model.pose.config  # the config describes the exported pose network exactly
    assert isinstance(load_ort_model(paths["pose"]), OrtDeMoPose)  # either file finds its sibling
    for B in (1, 5):
        batch = _fixture_batch(frame, B, image_size=(64, 64))
        from demopose.data.detection_samples import letterbox_image

        batch["image"] = torch.from_numpy(letterbox_image(frame.rgb, (64, 64)))[None]
        batch["image_index"] = torch.zeros(B, dtype=torch.int64)
        with torch.no_grad(), exact_distances():
            ref = model(batch, generator=torch.Generator().manual_seed(5))
        got = ortm(batch, generator=torch.Generator().manual_seed(5))
        assert _max_diff(ref, got) < TOL
    # the detection run's feature maps stand in for the image (torch and onnxruntime alike)
    torch_feats, ort_feats = model.mono.detect_frame(frame).features, ortm.mono.detect_frame(frame).features
    assert sorted(ort_feats) == list(ortm.levels) and set(ortm.levels) <= set(torch_feats)
    reuse = {k: v for k, v in batch.items() if k != "image"}
    with torch.no_grad(), exact_distances():
        ref_reuse = model({**reuse, "image_features": torch_feats}, generator=torch.Generator().manual_seed(5))
    assert _max_diff(ref, ref_reuse) == 0.0
    got_reuse = ortm({**reuse, "image_features": ort_feats}, generator=torch.Generator().manual_seed(5))
    assert _max_diff(got, got_reuse) == 0.0
    with pytest.raises(KeyError, match="image_features"):
        ortm(reuse)
