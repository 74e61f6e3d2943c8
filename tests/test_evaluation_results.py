"""NOCS results pickles (both conventions), bad inputs, and ``demopose eval`` on a tiny folder."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from demopose.cli import main
from demopose.evaluation import FrameResult, frame_to_dict, read_results_pkl, write_results_pkl
from demopose.geometry import PoseSet, rotation_about_axis


def _frame(path="scene_1/0000") -> FrameResult:
    R = np.stack([rotation_about_axis(np.array(a), "y") for a in (0.3, -1.1)])
    gt = PoseSet([6, 2], R, [[-0.1, 0.0, 0.8], [0.15, 0.05, 0.9]], [[0.12, 0.09, 0.1], [0.16, 0.07, 0.16]],
                 handle_visible=np.array([False, True]))
    pred = PoseSet([6], R[:1], [[-0.1, 0.0, 0.8]], [[0.12, 0.09, 0.1]], [0.7])
    return FrameResult(path, pred, gt)


@pytest.mark.parametrize("convention", ["nocs", "gpv"])
def test_round_trip_both_conventions(tmp_path, convention):
    f = _frame()
    write_results_pkl(tmp_path / "r.pkl", f, convention=convention)
    d = pickle.loads((tmp_path / "r.pkl").read_bytes())
    assert set(d) >= {"image_path", "gt_class_ids", "gt_RTs", "gt_scales", "gt_handle_visibility",
                      "pred_class_ids", "pred_bboxes", "pred_scores", "pred_RTs", "pred_scales"}
    det = np.linalg.det(d["gt_RTs"][:, :3, :3])
    if convention == "nocs":
        np.testing.assert_allclose(np.linalg.norm(d["gt_scales"], axis=1), 1.0)
        np.testing.assert_allclose(np.cbrt(det), np.linalg.norm(f.gt.size, axis=1))
    else:
        np.testing.assert_allclose(d["gt_scales"], f.gt.size)
        np.testing.assert_allclose(det, 1.0)
    assert (d["pred_bboxes"] != 0).any(axis=1).all()  # the published code rejects all-zero boxes
    (back,) = read_results_pkl(tmp_path / "r.pkl")
    for a, b in ((back.gt, f.gt), (back.pred, f.pred)):
        np.testing.assert_allclose(a.R, b.R, atol=1e-12)
        np.testing.assert_allclose(a.t, b.t, atol=1e-12)
        np.testing.assert_allclose(a.size, b.size, atol=1e-12)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_array_equal(back.gt.handle_visible, [False, True])
    assert back.pred.scores[0] == 0.7 and back.image_path == "scene_1/0000"


def test_list_pickle_and_empty_predictions(tmp_path):
    f = _frame()
    f.pred = PoseSet.empty()
    d = frame_to_dict(f)
    d["pred_RTs"] = []  # as some writers store "no detections"
    (tmp_path / "all.pkl").write_bytes(pickle.dumps([d, frame_to_dict(_frame())]))
    frames = read_results_pkl(tmp_path / "all.pkl")
    assert [len(x.pred) for x in frames] == [0, 1]


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.pop("pred_scores"), r"missing key 'pred_scores'"),
    (lambda d: d.__setitem__("gt_RTs", np.zeros((2, 3, 4))), r"'gt_RTs': expected shape \(N, 4, 4\)"),
    (lambda d: d["pred_RTs"].__setitem__((0, 0, 3), np.nan), r"'pred_RTs': contains NaN"),
    (lambda d: d.__setitem__("gt_scales", np.ones((3, 3))), r"'gt_scales': 3 entries but gt_class_ids has 2"),
    (lambda d: d["gt_RTs"].__setitem__((0, slice(None, 3), slice(None, 3)), 0.0), r"'gt_RTs': .*determinant"),
])
def test_bad_inputs_name_file_and_key(tmp_path, mutate, match):
    d = frame_to_dict(_frame())
    mutate(d)
    p = tmp_path / "bad.pkl"
    p.write_bytes(pickle.dumps(d))
    with pytest.raises(ValueError, match=match) as e:
        read_results_pkl(p)
    assert str(p) in str(e.value)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="junk.pkl: not a readable pickle"):
        read_results_pkl(tmp_path / "junk.pkl")


def test_cli_eval_known_answer(tmp_path, capsys):
    # frame 1: mug found exactly; frame 2: mug missed, bowl found exactly
    # -> mug AP 1/2 for IoU metrics (recall 1/2); pose AP 1 (only the matched mug counts); bowl 1
    res = tmp_path / "results"
    f1 = _frame("a")
    f1.gt = f1.gt.select(np.array([0]))
    write_results_pkl(res / "results_a.pkl", f1)
    f2 = _frame("b")
    f2.pred = PoseSet([2], f2.gt.R[1:], f2.gt.t[1:], f2.gt.size[1:], [0.9])
    write_results_pkl(res / "results_b.pkl", f2, convention="gpv")
    out = tmp_path / "out"
    assert main(["eval", str(res), "--iou", "both", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "IoU mode 'nocs'" in text and "IoU mode 'exact'" in text
    rows = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines() if ln.split()}
    assert rows["mug"] == ["2", "1", "50.0", "50.0", "50.0", "100.0", "100.0", "100.0", "100.0", "100.0"]
    assert rows["bottle"] == ["0", "0"] + ["-"] * 8
    assert rows["mean"][2:5] == ["75.0", "75.0", "75.0"]
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["schema"] == "demopose.nocs_metrics/1" and doc["iou_modes"] == ["nocs", "exact"]
    assert doc["metrics"]["exact/mug/iou50"] == 0.5 and doc["metrics"]["nocs/mean/iou75"] == 0.75
    assert doc["metrics"]["nocs/camera/iou50"] is None and doc["modes"]["nocs"]["headline"]["camera"] is None
    curves = doc["modes"]["exact"]["curves"]
    assert len(curves["iou"]["thresholds"]) == 101 and len(curves["rotation_deg"]["thresholds"]) == 61
    assert curves["translation_cm"]["ap"]["bowl"][0] == 1.0
    for mode in ("nocs", "exact"):
        assert (out / f"ap_curves_{mode}.png").read_bytes()[:4] == b"\x89PNG"
    # category subset and a bad category
    assert main(["eval", str(res), "--iou", "nocs", "--categories", "bowl", "--out", str(out), "--no-plots",
                 "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["metrics"]["nocs/mean/iou50"] == 1.0
    assert main(["eval", str(res), "--categories", "plate", "--out", str(out)]) == 1
    assert "no category named 'plate'" in capsys.readouterr().err
