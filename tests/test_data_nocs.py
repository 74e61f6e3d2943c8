"""NOCS readers on the real fixture frames (REAL275 test scene_1/0000, CAMERA25 val 00000/0000)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from demopose.categories import NOCS_REAL
from demopose.data.detections import (
    detections_path,
    read_dualposenet_segmentation,
    read_spd_label,
    read_spd_mrcnn,
)
from demopose.data.nocs import NOCSDataset, list_frames, load_frame, parse_frame_path
from demopose.data.nocs_files import decode_camera_depth, read_depth, read_gts_pkl, read_meta
from demopose.data.obj_models import load_mesh, read_bbox_txt, read_extents_txt
from demopose.geometry import depth_to_points, project_points, robust_umeyama, rotation_angle_deg, y_axis_angle_deg

FIX = Path(__file__).parent / "fixtures" / "nocs_sample"
REAL = FIX / "Real" / "test" / "scene_1" / "0000"
CAM = FIX / "CAMERA" / "val" / "00000" / "0000"


@pytest.fixture(scope="module")
def real_frame():
    return load_frame(REAL)


@pytest.fixture(scope="module")
def cam_frame():
    return load_frame(CAM)


def test_real_frame_contents(real_frame):
    f = real_frame
    assert f.frame_id == "Real/test/scene_1/0000"
    assert f.instance_ids.tolist() == [1, 2, 3, 4, 5]
    assert f.class_ids.tolist() == [2, 4, 3, 6, 5]  # bowl, can, camera, mug, laptop
    assert f.model_names[3] == "mug_daniel_norm"
    assert f.rgb.shape == (480, 640, 3) and f.rgb.dtype == np.uint8
    assert f.depth.dtype == np.float32 and f.depth.shape == (480, 640)
    assert f.depth.max() == pytest.approx(1.167)  # 16-bit mm -> metres
    assert f.instance_map.dtype == np.int32 and set(np.unique(f.instance_map)) == {0, 1, 2, 3, 4, 5}
    assert f.K[0, 0] == 591.0125
    assert np.all(np.isnan(f.nocs[f.instance_map == 0]))
    obj = f.nocs[f.instance_map > 0]
    assert np.all(np.isfinite(obj)) and obj.min() >= -0.5 and obj.max() <= 0.5
    assert f.handle_visible.all()
    # Known values (notes/depth_and_eval.md §7): bowl t and the metric diagonals.
    np.testing.assert_allclose(f.poses[0].t, [-0.2608, 0.1170, 0.7518], atol=1e-4)
    np.testing.assert_allclose([p.scale for p in f.poses], [0.20993, 0.18467, 0.25840, 0.16474, 0.44764],
                               atol=1e-5)


def test_real_sizes_equal_extents_files(real_frame):
    for name, pose in zip(real_frame.model_names, real_frame.poses):
        ext = read_extents_txt(FIX / "obj_models" / "real_test" / f"{name}.txt")
        np.testing.assert_allclose(pose.size, ext, rtol=0, atol=1e-12)


def test_camera_frame_excludes_distractors(cam_frame):
    f = cam_frame
    meta = read_meta(f"{CAM}_meta.txt")
    assert len(meta) == 15 and meta[0].synset == "03642806"
    assert f.instance_ids.tolist() == [1, 2]  # mask ids {1, 2, 6, 13}; 6 and 13 are class 0
    assert f.class_ids.tolist() == [5, 5]
    assert f.meta["distractor_ids"] == [5, 6, 8, 10, 11, 12, 13, 15]
    assert f.model_names[0] == "03642806/fdec2b8af5dd988cef56c22fd326c67"
    assert f.meta["depth_source"] == "composed"
    np.testing.assert_allclose(f.poses[0].t, [0.302, -0.194, 0.974], atol=1e-3)
    assert f.poses[0].scale == pytest.approx(0.407, abs=1e-3)
    # CAMERA sizes are gt_scales · s and gt_scales equal the model bbox.txt extents.
    bbox = read_bbox_txt(FIX / "obj_models/val/03642806/fdec2b8af5dd988cef56c22fd326c67/bbox.txt")
    np.testing.assert_allclose(f.poses[0].size / f.poses[0].scale, bbox, atol=1e-6)


@pytest.mark.parametrize("which", ["real", "camera"])
def test_gt_translation_projects_inside_mask(which, real_frame, cam_frame):
    f = real_frame if which == "real" else cam_frame
    gt = f.ground_truth()
    uv = project_points(gt.t, f.K)
    for k, iid in enumerate(f.instance_ids):
        u, v = np.round(uv[k]).astype(int)
        assert f.instance_map[v, u] == iid, f"instance {iid}: centre ({u},{v}) not inside its mask"


def _align_errors(f):
    out = []
    for k, iid in enumerate(f.instance_ids):
        pts, uv = depth_to_points(f.depth, f.K, f.instance_map == iid)
        nocs = f.nocs[uv[:, 1], uv[:, 0]]
        s, R, t, _ = robust_umeyama(nocs, pts, threshold=0.01)
        p = f.poses[k]
        sym = f.categories.is_y_symmetric(int(f.class_ids[k]), bool(f.handle_visible[k]))
        ang = y_axis_angle_deg(p.R, R) if sym else rotation_angle_deg(p.R, R)
        out.append((float(ang), float(np.linalg.norm(t - p.t)), abs(s - p.scale)))
    return np.array(out)


def test_nocs_map_aligns_to_camera_pose(cam_frame):
    err = _align_errors(cam_frame)
    assert err[:, 0].max() < 0.1 and err[:, 1].max() < 1e-3 and err[:, 2].max() < 1e-3


def test_nocs_map_aligns_to_real_pose(real_frame):
    # Real sensor depth: measured 1.2–4.6 deg and 0.6–16 mm (the can's depth is biased) on this frame.
    err = _align_errors(real_frame)
    assert err[:, 0].max() < 6.0
    assert err[:, 1].max() < 0.02
    assert np.median(err[:, 1]) < 0.008


def test_camera_depth_encodings():
    composed, enc_c = read_depth(FIX / "camera_full_depths/val/00000/0000_composed.png")
    obj, enc_o = read_depth(f"{CAM}_depth.png")
    assert (enc_c, enc_o) == ("uint16", "camera_rgb")
    m = obj > 0
    assert m.sum() == 31250
    np.testing.assert_array_equal(composed[m], obj[m])
    assert (composed > 0).mean() > 0.9 and m.mean() < 0.15  # composed has the background too
    f_obj = load_frame(CAM, depth="object")
    assert f_obj.meta["depth_source"] == "object"
    np.testing.assert_array_equal(f_obj.depth > 0, m)


def test_decode_camera_depth_known_values():
    img = np.zeros((1, 4, 3), np.uint8)  # cv2 BGR: value = ch1 * 256 + ch2
    img[0, 0] = (0, 3, 232)  # 1000 mm
    img[0, 1] = (0, 125, 1)  # 32001 = no object -> 0
    img[0, 2] = (9, 200, 100)  # 51300 mm: needs int32 (uint8 / uint16 arithmetic would overflow)
    img[0, 3] = (7, 0, 0)
    np.testing.assert_array_equal(decode_camera_depth(img), [[1000, 0, 51300, 0]])


def test_parse_frame_path_variants():
    a = parse_frame_path(REAL)
    b = parse_frame_path(f"{REAL}_color.png")
    assert a == b and a.kind == "real" and a.split == "test" and a.scene == "scene_1" and a.root == FIX
    c = parse_frame_path(f"{CAM}_meta.txt")
    assert c.kind == "camera" and c.gts_path() == FIX / "gts/val/results_val_00000_0000.pkl"
    with pytest.raises(ValueError, match="not a NOCS frame"):
        parse_frame_path(FIX / "LICENSE-NOTE.md")


def test_loose_folder_detected_from_meta(tmp_path):
    for suf in ("color.png", "depth.png", "mask.png", "coord.png", "meta.txt"):
        shutil.copy(f"{CAM}_{suf}", tmp_path / f"0007_{suf}")
    f = load_frame(tmp_path / "0007_color.png")
    assert f.meta["kind"] == "camera" and f.poses is not None  # no gts, no root: recovered by Umeyama
    assert f.meta["depth_source"] == "object"  # no camera_full_depths next to a loose folder
    assert len(f) == 2


def _copy_as_train(tmp_path: Path) -> Path:
    """The fixture frames re-laid-out as REAL train / CAMERA train (no gts pickles there)."""
    root = tmp_path / "NOCS"
    rdst = root / "Real/train/scene_1"
    cdst = root / "CAMERA/train/00000"
    for d in (rdst, cdst, root / "obj_models/real_train", root / "camera_full_depths/train/00000"):
        d.mkdir(parents=True)
    for suf in ("color.png", "depth.png", "mask.png", "coord.png", "meta.txt"):
        shutil.copy(f"{REAL}_{suf}", rdst / f"0000_{suf}")
        shutil.copy(f"{CAM}_{suf}", cdst / f"0000_{suf}")
    shutil.copy(FIX / "camera_full_depths/val/00000/0000_composed.png", root / "camera_full_depths/train/00000")
    for p in (FIX / "obj_models/real_test").glob("*.txt"):
        shutil.copy(p, root / "obj_models/real_train")
    for p in (FIX / "obj_models/val/03642806").glob("*/bbox.txt"):
        (root / "obj_models/train/03642806" / p.parent.name).mkdir(parents=True)
        shutil.copy(p, root / "obj_models/train/03642806" / p.parent.name)
    return root


def test_pose_recovery_without_gts(tmp_path, real_frame, cam_frame):
    root = _copy_as_train(tmp_path)
    with open(root / "Real/train/mug_handle.pkl", "wb") as fh:
        pickle.dump({"scene_1_res": np.array([0, 1])}, fh)
    fr = load_frame(root / "Real/train/scene_1/0000")
    assert fr.meta["pose_source"] == "umeyama"
    assert fr.instance_ids.tolist() == real_frame.instance_ids.tolist()
    for k, (p, q) in enumerate(zip(fr.poses, real_frame.poses)):
        np.testing.assert_allclose(p.size, q.size, atol=1e-9)  # REAL: size = extents, scale fixed
        sym = NOCS_REAL.is_y_symmetric(int(fr.class_ids[k]), True)
        ang = y_axis_angle_deg(p.R, q.R) if sym else rotation_angle_deg(p.R, q.R)
        assert ang < 7.0 and np.linalg.norm(p.t - q.t) < 0.02
    # mug_handle.pkl: frame 0 of scene_1 has its handle hidden -> only the mug (class 6) is False.
    assert fr.handle_visible.tolist() == [c != 6 for c in fr.class_ids]

    fc = load_frame(root / "CAMERA/train/00000/0000")
    assert fc.meta["pose_source"] == "umeyama" and fc.meta["depth_source"] == "composed"
    for p, q in zip(fc.poses, cam_frame.poses):
        assert rotation_angle_deg(p.R, q.R) < 0.1
        np.testing.assert_allclose(p.t, q.t, atol=1e-3)
        np.testing.assert_allclose(p.size, q.size, atol=1e-3)  # bbox.txt extents · estimated s


def test_dataset_listing_and_list_file(tmp_path):
    ds = NOCSDataset(FIX, "real_test")
    assert len(ds) == 1 and ds[0].frame_id == "Real/test/scene_1/0000"
    assert len(NOCSDataset(FIX, "camera_val", depth="object")) == 1
    with pytest.raises(ValueError, match="subset"):
        NOCSDataset(FIX, "kinect_val")
    with pytest.raises(FileNotFoundError, match="Real/val: folder not found"):
        NOCSDataset(FIX, "real_val")  # any split name is allowed (generated data), but it must exist
    with pytest.raises(FileNotFoundError, match="train"):
        NOCSDataset(FIX, "camera_train")
    root = _copy_as_train(tmp_path)
    (root / "Real/train_list.txt").write_text("train/scene_1/0000\n")
    ds = NOCSDataset(root, "real_train")
    assert ds.frames == [root / "Real/train/scene_1/0000"]
    (root / "Real/train_list.txt").write_text("train/scene_1/0000\ntrain/scene_1/0001\n")
    with pytest.raises(FileNotFoundError, match="train_list.txt:2"):
        NOCSDataset(root, "real_train")
    assert list_frames(FIX) == [CAM, REAL]


def test_gts_mismatch_names_file(tmp_path):
    root = tmp_path / "NOCS"
    shutil.copytree(FIX / "Real", root / "Real")
    (root / "gts/real_test").mkdir(parents=True)
    gp = root / "gts/real_test/results_real_test_scene_1_0000.pkl"
    g = read_gts_pkl(FIX / "gts/real_test/results_real_test_scene_1_0000.pkl")
    with open(gp, "wb") as fh:
        pickle.dump({"gt_RTs": g["gt_RTs"][:4]}, fh)
    with pytest.raises(ValueError, match=r"results_real_test_scene_1_0000.pkl: 4 poses"):
        load_frame(root / "Real/test/scene_1/0000")
    with open(gp, "wb") as fh:
        pickle.dump({"gt_RTs": np.zeros((5, 3, 4))}, fh)
    with pytest.raises(ValueError, match=r"'gt_RTs' must have shape \(N, 4, 4\)"):
        load_frame(root / "Real/test/scene_1/0000")


def test_unknown_class_in_meta_raises(tmp_path):
    for suf in ("color.png", "depth.png", "mask.png", "coord.png"):
        shutil.copy(f"{REAL}_{suf}", tmp_path / f"0000_{suf}")
    (tmp_path / "0000_meta.txt").write_text("1 2 a\n2 9 b\n3 3 c\n4 6 d\n5 5 e\n")
    with pytest.raises(ValueError, match=r"0000_meta.txt: instance 2 has class id 9"):
        load_frame(tmp_path / "0000")


def test_detection_readers(tmp_path):
    H, W = 6, 8
    masks = np.zeros((H, W, 2), bool)
    masks[1:3, 2:5, 0] = True
    masks[4:6, 0:2, 1] = True
    boxes = np.array([[1, 2, 3, 5], [4, 0, 6, 2]])  # y1 x1 y2 x2
    dp = detections_path(tmp_path, "real", "test", "scene_1", "0000")
    assert dp == tmp_path / "segmentation_results/REAL275/results_test_scene_1_0000.pkl"
    dp.parent.mkdir(parents=True)
    with open(dp, "wb") as fh:
        pickle.dump({"pred_class_ids": np.array([6, 2]), "pred_scores": np.array([0.9, 0.4]),
                     "pred_masks": masks, "pred_bboxes": boxes, "gt_class_ids": np.array([6])}, fh)
    d = read_dualposenet_segmentation(dp)
    assert len(d) == 2 and d.masks.shape == (2, H, W) and d.masks.dtype == bool
    np.testing.assert_array_equal(d.boxes, [[2, 1, 5, 3], [0, 4, 2, 6]])  # x1 y1 x2 y2
    assert d.masks[0, 1, 2] and not d.masks[1, 1, 2] and d.meta["gt_class_ids"].tolist() == [6]
    assert len(d.select(d.scores > 0.5)) == 1

    sp = detections_path(tmp_path, "camera", "val", "00000", "0003", source="spd")
    assert sp == tmp_path / "mrcnn_results/val/results_val_00000_0003.pkl"
    sp.parent.mkdir(parents=True)
    with open(sp, "wb") as fh:
        pickle.dump({"class_ids": np.array([1]), "rois": boxes[:1], "scores": np.array([0.7]),
                     "masks": masks[:, :, :1]}, fh)
    s = read_spd_mrcnn(sp)
    assert s.class_ids.tolist() == [1] and s.boxes.tolist() == [[2, 1, 5, 3]]
    with open(sp, "wb") as fh:
        pickle.dump({"class_ids": np.array([1, 2]), "rois": boxes[:1], "scores": np.array([0.7, 0.1]),
                     "masks": masks}, fh)
    with pytest.raises(ValueError, match=r"results_val_00000_0003.pkl: 'rois' must have shape \(2, 4\)"):
        read_spd_mrcnn(sp)

    lp = tmp_path / "0000_label.pkl"
    with open(lp, "wb") as fh:
        pickle.dump({"class_ids": [6], "instance_ids": [4], "model_list": ["mug_daniel_norm"],
                     "bboxes": boxes[:1], "scales": np.array([0.16]), "rotations": np.eye(3)[None],
                     "translations": np.array([[0, 0, 1.0]]), "handle_visibility": [0]}, fh)
    lab = read_spd_label(lp)
    assert lab.model_names == ["mug_daniel_norm"] and lab.boxes.tolist() == [[2, 1, 5, 3]]
    assert lab.handle_visible.tolist() == [False]


def test_mesh_loader_matches_extents():
    mesh = load_mesh(FIX / "obj_models/val/03642806/fdec2b8af5dd988cef56c22fd326c67/model.obj")
    bbox = read_bbox_txt(FIX / "obj_models/val/03642806/fdec2b8af5dd988cef56c22fd326c67/bbox.txt")
    np.testing.assert_allclose(mesh.extents, bbox, atol=1e-5)
    flipped = load_mesh(FIX / "obj_models/val/03642806/fdec2b8af5dd988cef56c22fd326c67/model.obj", flip_z=True)
    np.testing.assert_allclose(flipped.vertices[:, 2], -mesh.vertices[:, 2])
    with pytest.raises(FileNotFoundError, match="nope.obj"):
        load_mesh(FIX / "nope.obj")


def test_truncated_png_is_refused(tmp_path):
    data = Path(f"{REAL}_mask.png").read_bytes()
    (tmp_path / "m.png").write_bytes(data[: len(data) // 2])
    from demopose.data.nocs_files import read_mask

    with pytest.raises(ValueError, match=r"m.png: truncated PNG"):
        read_mask(tmp_path / "m.png")
    img = cv2.imread(f"{REAL}_mask.png", cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint8 and img.ndim == 2
