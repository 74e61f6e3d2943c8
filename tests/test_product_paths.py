"""The product paths as a user takes them (#17): packaged configs from a folder outside the repository, any pose
checkpoint with a detector on one's own frames, `predict --masks gt` and `test` giving the same poses, sizes
never degenerate, missed objects and empty frames reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from demopose.cli import main
from demopose.data.nocs import load_frame
from demopose.evaluation.results import read_results_pkl

REPO = Path(__file__).resolve().parents[1]
CKPTS = REPO / "checkpoints"
FIX = Path(__file__).resolve().parent / "fixtures" / "nocs_sample"
REAL = FIX / "Real/test/scene_1/0000"


def _predict_json(out: Path) -> dict:
    files = [f for f in out.glob("*.json") if f.name != "objects_within.json"]
    assert len(files) == 1
    return json.loads(files[0].read_text())


def _assert_same_poses(doc: dict, pkl: Path) -> None:
    """The poses of a predict JSON equal those of a test results pkl (as sets: JSON is by score)."""
    res = read_results_pkl(pkl)[0].pred
    assert len(doc["objects"]) == len(res)
    got = sorted((o["class_id"], *o["t"]) for o in doc["objects"])
    want = sorted((int(c), *t) for c, t in zip(res.class_ids, res.t))
    # the JSON keeps rounded values: compare within that rounding, not rounded twice (a value on a rounding
    # boundary, e.g. -0.01415, would differ in its last digit)
    assert [g[0] for g in got] == [w[0] for w in want]
    assert np.allclose(np.array(got)[:, 1:], np.array(want)[:, 1:], atol=1e-4)
    for o in doc["objects"]:
        j = int(np.argmin(np.linalg.norm(res.t - np.asarray(o["t"]), axis=1)))
        assert np.allclose(o["R"], res.R[j], atol=1e-5) and np.allclose(o["size"], res.size[j], atol=1e-5)


def test_predict_masks_gt_agrees_with_test(tmp_path, monkeypatch, capsys):
    """The reported case: the CleanPose checkpoint's mug on the REAL275 frame (predict sampled 1028 points, test
    the 512 the checkpoint was trained with)."""
    monkeypatch.chdir(tmp_path)
    ckpt = str(CKPTS / "cleanpose_synth_small.pt")
    assert main(["predict", str(REAL), "--checkpoint", ckpt, "--masks", "gt", "--out", "pred"]) == 0
    assert main(["test", "cleanpose_synth_small", ckpt, str(FIX), "--out", "test", "--no-plots",
                 "--no-progress"]) == 0
    doc = _predict_json(tmp_path / "pred")
    _assert_same_poses(doc, next((tmp_path / "test" / "results").glob("*.pkl")))
    mug = [o for o in doc["objects"] if o["class_name"] == "mug"]
    assert len(mug) == 1 and doc["missed"] == []


def test_gpv_checkpoint_with_the_bundled_detector_agrees_with_test(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = str(CKPTS / "gpv_synth_small.pt")
    assert main(["predict", str(REAL), "--checkpoint", ckpt, "--out", "pred"]) == 0
    doc = _predict_json(tmp_path / "pred")
    assert doc["detector"].endswith("mono_synth_small.pt") and doc["objects"]
    within = json.loads((tmp_path / "pred" / "objects_within.json").read_text())["summary"]
    assert within["objects"] == 5 and 0 <= within["within"]["10deg5cm"] <= within["found"] <= 5
    assert main(["test", "gpv_synth_small", ckpt, str(FIX), "eval.masks=detector", "--out", "test", "--no-plots",
                 "--no-progress"]) == 0
    _assert_same_poses(doc, next((tmp_path / "test" / "results").glob("*.pkl")))


def test_pose_checkpoint_on_own_frames_and_flag_errors(tmp_path, monkeypatch, capsys):
    """A folder of colour + depth PNGs with camera.json, run with a gpv and a CleanPose checkpoint; the errors of
    the command name its flags."""
    f = load_frame(REAL)
    own = tmp_path / "own_frames"
    own.mkdir()
    shutil.copy(str(REAL) + "_color.png", own / "a_color.png")
    shutil.copy(str(REAL) + "_depth.png", own / "a_depth.png")
    fx, fy, cx, cy = f.K[0, 0], f.K[1, 1], f.K[0, 2], f.K[1, 2]
    (own / "camera.json").write_text(json.dumps({"fx": fx, "fy": fy, "cx": cx, "cy": cy, "depth_scale": 0.001}))
    monkeypatch.chdir(tmp_path)
    for name in ("gpv_synth_small", "cleanpose_synth_small"):
        out = tmp_path / name
        assert main(["predict", "own_frames", "--checkpoint", str(CKPTS / f"{name}.pt"), "--out", str(out),
                     "--detector", str(CKPTS / "mono_synth_small.pt")]) == 0
        doc = _predict_json(out)
        assert doc["num_objects"] == len(doc["objects"]) and "missed" not in doc  # no ground truth here
    capsys.readouterr()
    assert main(["predict", "own_frames", "--checkpoint", str(CKPTS / "gpv_synth_small.pt"), "--masks", "gt"]) == 1
    assert "--masks gt" in capsys.readouterr().err
    assert main(["predict", str(REAL), "--checkpoint", str(CKPTS / "mono_synth_small.pt"), "--masks", "gt"]) == 1
    err = capsys.readouterr().err
    assert "--masks gt" in err and "monocular" in err and "pass masks and class_ids" not in err
    assert main(["predict", str(REAL), "--checkpoint", str(CKPTS / "gpv_synth_small.pt"),
                 "--detector", str(CKPTS / "gpv_synth_small.pt")]) == 1
    assert "--detector" in capsys.readouterr().err


def test_empty_frames_and_missed_objects_are_reported(tmp_path, capsys):
    assert main(["predict", str(REAL), "--checkpoint", str(CKPTS / "gpv_synth_small.pt"), "--out",
                 str(tmp_path), "--score-threshold", "1.01"]) == 0
    out = capsys.readouterr().out
    doc = _predict_json(tmp_path)
    assert doc["objects"] == [] and doc["num_objects"] == 0
    assert "no object found" in out and "1 of 1 frame(s) with no object" in out
    assert len(doc["missed"]) == len(load_frame(REAL)) and all(m["reason"] for m in doc["missed"])
    assert out.count("  missed ") == len(doc["missed"])


def test_sizes_never_degenerate():
    from types import SimpleNamespace

    from demopose.pipeline import MIN_SIZE, Instances, poses_from_prediction
    from demopose.predictor import Predictor

    pred = SimpleNamespace(R=torch.eye(3).repeat(2, 1, 1), t=torch.tensor([[0, 0, 1.0], [0.1, 0, 1]]),
                           size=torch.tensor([[-0.008, 0.1, 0.1], [0.001, 0.2, 0.05]]))
    inst = Instances(masks=np.zeros((2, 4, 4), bool), class_ids=np.array([1, 6]), scores=np.array([0.9, 0.8]))
    poses = poses_from_prediction(pred, inst, np.arange(2))
    assert (poses.size >= MIN_SIZE).all() and poses.size[0, 1] == pytest.approx(0.1)
    p = Predictor.__new__(Predictor)
    p.categories = load_frame(REAL).categories
    objs = p.objects(poses, inst)
    assert all(o.size_clamped for o in objs) and objs[0].to_dict()["size_clamped"] is True


def test_packaged_configs_train_and_test_outside_the_repository(tiny_synth, tmp_path, monkeypatch):
    """demopose_synth_small takes the shipped detector, cleanpose_synth_small the shipped teacher: both train
    from a folder without checkpoints/; test rebuilds the model from the checkpoint's own config."""
    data = tiny_synth(4, 2)
    monkeypatch.chdir(tmp_path)
    short = ["train.max_steps=2", "train.batch_size=2", "train.num_workers=0", "train.eval_every=0",
             "train.val_frames=1", "data.n_points=128", "--no-progress"]
    assert main(["train", "demopose_synth_small", "--data", str(data), "--out", "runs/demopose",
                 "model.args.mesh_points=64", *short]) == 0
    assert main(["train", "cleanpose_synth_small", "--data", str(data), "--out", "runs/cleanpose",
                 "model.args.causal.enabled=true", *short]) == 0
    for name, run in (("demopose_synth_small", "demopose"), ("cleanpose_synth_small", "cleanpose")):
        assert (tmp_path / "runs" / run / "model_final.pt").is_file()
        assert main(["test", name, f"runs/{run}/model_final.pt", str(data), "--out", f"runs/{run}/test",
                     "--no-plots", "--no-progress", "data.n_points=128"]) == 0
    # the shipped CleanPose checkpoint (trained without the front door and the teacher) under its packaged config
    assert main(["test", "cleanpose_synth_small", str(CKPTS / "cleanpose_synth_small.pt"), str(data), "--out",
                 "t2", "--no-plots", "--no-progress"]) == 0
    assert not (tmp_path / "checkpoints").exists()


def test_demo_with_a_pose_only_checkpoint(tmp_path, capsys):
    assert main(["demo", "--checkpoint", str(CKPTS / "gpv_synth_small.pt"), "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "demo.json").is_file()
    assert main(["demo", "--checkpoint", str(CKPTS / "mono_synth_small.pt"), "--masks", "gt", "--out",
                 str(tmp_path / "m")]) == 1
    assert "--masks gt" in capsys.readouterr().err
