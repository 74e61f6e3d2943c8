"""The product path: input validation, detector+depth masks, the Predictor, `demopose predict` and `demo`."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from demopose.cli import main
from demopose.data.nocs import NOCSDataset, load_frame
from demopose.data.user_frames import read_camera_json
from demopose.engine.checkpoint import CONFIG_VERSION, save_checkpoint
from demopose.models import build_model
from demopose.pipeline.masks import masks_from_boxes, support_plane
from demopose.predictor import Predictor, validate_inputs

FIX = Path(__file__).parent / "fixtures" / "nocs_sample"
REAL = FIX / "Real/test/scene_1/0000"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An (untrained) demopose_small checkpoint with its config, as training writes it."""
    torch.manual_seed(0)
    args = {"mono_args": {"input_size": [64, 64]}, "mesh_points": 16}
    m = build_model("demopose_small", **args)
    p = tmp_path_factory.mktemp("ckpt") / "demopose_tiny.pt"
    save_checkpoint(p, {"model": m.state_dict(), "config": {"model": {"name": "demopose_small", "args": args}},
                        "step": 0, "config_version": CONFIG_VERSION})
    return p


def test_validate_inputs_names_the_problem():
    f = load_frame(REAL)
    rgb, depth, K = validate_inputs(f.rgb, f.depth, f.K)
    assert depth.dtype == np.float32 and np.isclose(np.median(depth[depth > 0]), np.median(f.depth[f.depth > 0]))
    with pytest.raises(ValueError, match="millimetres"):
        validate_inputs(f.rgb, f.depth * 1000, f.K)
    with pytest.raises(ValueError, match="depth_scale"):
        validate_inputs(f.rgb, (f.depth * 1000).astype(np.uint16), f.K)
    mm = validate_inputs(f.rgb, (f.depth * 1000).astype(np.uint16), f.K, depth_scale=0.001)[1]
    assert np.allclose(mm, f.depth, atol=1e-3)
    with pytest.raises(ValueError, match="principal point"):
        validate_inputs(f.rgb, f.depth, f.K * np.array([[1, 1, 4], [1, 1, 4], [1, 1, 1]]))
    with pytest.raises(ValueError, match="shape"):
        validate_inputs(f.rgb, f.depth[:-1], f.K)
    with pytest.raises(ValueError, match="K must be"):
        validate_inputs(f.rgb, f.depth, np.eye(4))


def test_support_plane_and_masks_from_boxes(tiny_synth):
    """Known answer: boxes of the true masks give masks that overlap the true masks."""
    root = tiny_synth(1, 1)
    f = NOCSDataset(root, "real_test", load_nocs=False)[0]
    plane = support_plane(f.depth, f.K)
    assert plane is not None and abs(np.linalg.norm(plane[:3]) - 1) < 1e-6
    gt = f.masks()
    boxes = np.array([[u.min(), v.min(), u.max(), v.max()] for v, u in (np.nonzero(m) for m in gt)], float)
    masks, keep = masks_from_boxes(f, boxes, f.class_ids, np.linspace(1, 0.5, len(gt)), f.categories, min_pixels=5)
    assert len(keep) >= 1
    ious = [(masks[i] & gt[k]).sum() / (masks[i] | gt[k]).sum() for i, k in enumerate(keep)]
    assert np.median(ious) > 0.5, ious
    assert not (masks.sum(0) > 1).any(), "a pixel belongs to one object"


def test_predictor_with_given_masks_and_with_its_detector(tiny_checkpoint):
    f = load_frame(REAL)
    p = Predictor.from_checkpoint(tiny_checkpoint, score_threshold=0.0)
    objs = p.predict(f.rgb, f.depth, f.K, masks=f.masks(), class_ids=f.class_ids)
    assert len(objs) == len(f) and {o.class_id for o in objs} == set(f.class_ids.tolist())
    o = objs[0]
    assert o.R.shape == (3, 3) and o.t.shape == (3,) and o.size.shape == (3,) and o.box is not None
    assert np.allclose(o.R @ o.R.T, np.eye(3), atol=1e-5)
    assert json.dumps(o.to_dict())
    again = p.predict(f.rgb, f.depth, f.K, masks=f.masks(), class_ids=f.class_ids)
    assert np.allclose(again[0].t, o.t), "deterministic for a given seed"
    with pytest.raises(ValueError, match="class_ids"):
        p.predict(f.rgb, f.depth, f.K, masks=f.masks())


def _boxes_of(masks: np.ndarray) -> np.ndarray:
    out = []
    for m in masks:
        v, u = np.nonzero(m)
        out.append([u.min(), v.min(), u.max(), v.max()])
    return np.asarray(out, np.float64)


def test_detector_driven_prediction_reuses_the_detection_features(tiny_checkpoint, monkeypatch):
    """Without masks, the detector's boxes become depth masks and its PAN maps feed the fusion: the backbone
    runs once per frame, and the poses equal those of a fresh feature pass on the letterboxed frame."""
    from demopose.pipeline import Instances, predict_frame

    f = load_frame(REAL)
    p = Predictor.from_checkpoint(tiny_checkpoint, score_threshold=0.0)
    real_detect = p.detect

    def gt_detect(frame):  # the untrained detector's boxes replaced by the ground-truth ones, its features kept
        det = real_detect(frame)
        n = len(f)
        return Instances(boxes=_boxes_of(f.masks()), class_ids=f.class_ids.copy(), scores=np.linspace(0.9, 0.5, n),
                         keypoints=np.zeros((n, 9, 2)), rel_size=np.zeros((n, 3)), features=det.features)

    monkeypatch.setattr(p, "detect", gt_detect)
    calls = []
    hook = p.model.mono.backbone.register_forward_hook(lambda *a: calls.append(1))
    try:
        objs = p.predict(f.rgb, f.depth, f.K)
    finally:
        hook.remove()
    assert len(calls) == 1, "the backbone ran again for the fused features"
    assert sorted(o.class_id for o in objs) == sorted(f.class_ids.tolist())
    assert [o.score for o in objs] == sorted((o.score for o in objs), reverse=True)
    det = gt_detect(f)
    inst = p.masks_for(f, det)
    assert len(inst.class_ids) == len(f)
    reused, _ = predict_frame(p.model, f, inst, p.n_points, p.seed, p.device, det.features)
    fresh, _ = predict_frame(p.model, f, inst, p.n_points, p.seed, p.device)
    assert np.allclose(reused.R, fresh.R, atol=1e-6) and np.allclose(reused.t, fresh.t, atol=1e-7)
    assert not np.allclose(reused.t, 0)
    wrong = {0: det.features[0][..., :-1, :]}  # a map of another input size is refused, not sampled
    with pytest.raises(ValueError, match=r"image_features.*expected"):
        p.model.point_features(None, torch.zeros(1, 4, 2), None, wrong)


def test_depth_only_model_needs_masks(tmp_path):
    m = build_model("gpv_small")
    f = load_frame(REAL)
    with pytest.raises(ValueError, match="no detector"):
        Predictor(m).predict(f.rgb, f.depth, f.K)


def test_camera_json_errors(tmp_path):
    p = tmp_path / "camera.json"
    p.write_text(json.dumps({"fx": 500, "fy": 500, "cx": 320}))
    with pytest.raises(ValueError, match="cy"):
        read_camera_json(p)
    p.write_text(json.dumps({"K": [[500, 0, 320], [0, 500, 240], [0, 0, 1]], "depth_scale": 1000}))
    with pytest.raises(ValueError, match="depth_scale"):
        read_camera_json(p)
    p.write_text(json.dumps({"fx": 500, "fy": 500, "cx": 320, "cy": 240}))
    assert read_camera_json(p).depth_scale == 0.001


def test_cli_predict_on_nocs_frame_and_user_folder(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", str(REAL) + "_color.png", "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                 "--masks", "gt"]) == 0
    doc = json.loads((out / "Real_test_scene_1_0000.json").read_text())
    assert len(doc["objects"]) == 5 and "error_vs_gt" in doc["objects"][0]
    table = [x for x in capsys.readouterr().out.splitlines() if x.startswith("Real_test_scene_1_0000  ")]
    assert len(table) == 5  # the per-object table of `demopose test`, one row per ground-truth object
    assert (out / "Real_test_scene_1_0000_overlay.png").is_file()
    # a folder of colour + 16-bit depth PNGs with camera.json
    f = load_frame(REAL)
    user = tmp_path / "mine"
    user.mkdir()
    cv2.imwrite(str(user / "a_color.png"), f.rgb[:, :, ::-1])
    cv2.imwrite(str(user / "a_depth.png"), (f.depth * 1000).astype(np.uint16))
    K = f.K
    (user / "camera.json").write_text(json.dumps({"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2],
                                                  "depth_scale": 0.001}))
    assert main(["predict", str(user), "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                 "--score-threshold", "0"]) == 0
    assert (out / "a.json").is_file() and (out / "a_overlay.png").is_file()
    (user / "camera.json").write_text(json.dumps({"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2],
                                                  "depth_scale": 1.0}))  # millimetre PNG read as metres
    capsys.readouterr()
    assert main(["predict", str(user), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "millimetres" in err and "depth_scale" in err and "a_depth.png" in err


def test_cli_demo_runs_offline(tiny_checkpoint, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--checkpoint", str(tiny_checkpoint),
                 "--masks", "gt"]) == 0
    text = capsys.readouterr().out
    assert "rot err" in text and (tmp_path / "d" / "demo.png").is_file()
    doc = json.loads((tmp_path / "d" / "demo.json").read_text())
    assert len(doc["ground_truth"]) >= 1


def test_onnxruntime_backend_matches_torch(tmp_path, monkeypatch):
    """Same API, same outputs: the exported graph (exact neighbour search) against torch on the REAL fixture."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("DEMOPOSE_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    ck = tmp_path / "gpv.pt"
    save_checkpoint(ck, {"model": build_model("gpv_small").state_dict(),
                         "config": {"model": {"name": "gpv_small", "args": {}}}, "step": 0})
    f = load_frame(REAL)
    ort = Predictor.from_checkpoint(ck, backend="onnxruntime", threads=1)
    assert list((tmp_path / "cache" / "onnx").glob("*.onnx")), "exported once into the cache"
    a = ort.predict(f.rgb, f.depth, f.K, masks=f.masks(), class_ids=f.class_ids)
    from demopose.layers.knn import exact_distances

    with exact_distances():
        b = Predictor.from_checkpoint(ck).predict(f.rgb, f.depth, f.K, masks=f.masks(), class_ids=f.class_ids)
    assert [o.class_id for o in a] == [o.class_id for o in b]
    for x, y in zip(a, b):
        assert np.allclose(x.R, y.R, atol=1e-4) and np.allclose(x.t, y.t, atol=1e-5)
    with pytest.raises(ValueError, match="backend"):
        Predictor.from_checkpoint(ck, backend="tensorrt")


def test_nearest_gt_errors_known_answers():
    """Ground truth scored against itself: zero errors, IoU 1, each matched to itself; a class the frame lacks
    gets None; a shifted pose gets exactly its shift."""
    from demopose.evaluation.errors import nearest_gt_errors
    from demopose.geometry.pose import PoseSet

    f = load_frame(REAL)
    gt = f.ground_truth()
    errs = nearest_gt_errors(gt, f)
    assert [e["gt_index"] for e in errs] == list(range(len(gt)))
    assert all(e["rotation_deg"] == 0 and e["translation_cm"] == 0 and e["iou3d"] == 1.0 for e in errs)
    absent = next(c.id for c in f.categories if c.id not in set(gt.class_ids.tolist()))
    t = gt.t[:1] + np.array([[0.03, 0.0, 0.04]])  # 5 cm away
    moved = PoseSet(np.array([gt.class_ids[0], absent]), np.concatenate([gt.R[:1], gt.R[:1]]),
                    np.concatenate([t, t]), np.concatenate([gt.size[:1], gt.size[:1]]), np.ones(2))
    e0, e1 = nearest_gt_errors(moved, f)
    assert e0["gt_index"] == 0 and e0["translation_cm"] == 5.0 and e0["rotation_deg"] == 0 and e0["iou3d"] < 1
    assert e1 is None
