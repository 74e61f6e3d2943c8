"""HouseCat6D reader on a tiny scene written in its layout: one box with a known pose."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from demopose.categories import HOUSECAT6D
from demopose.data.housecat6d import HouseCat6DDataset, load_housecat6d_frame
from demopose.geometry import depth_to_points, rotation_about_axis

W, H = 160, 120
K = np.array([[150.0, 0, 80.0], [0, 150.0, 60.0], [0, 0, 1]])
SIZE = np.array([0.10, 0.06, 0.08])
T = np.array([0.02, -0.01, 0.6])


def _pose():
    return rotation_about_axis(np.deg2rad([35.0]), "y")[0] @ rotation_about_axis(np.deg2rad([20.0]), "x")[0]


def _render_box(R: np.ndarray, t: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Exact ray casting of an oriented box: ``(H, W)`` depth in metres (0 = miss)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    d = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # z = 1
    o = -R.T @ t  # camera centre in the object frame
    dl = d @ R  # ray directions in the object frame
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-size / 2 - o) / dl
        t2 = (size / 2 - o) / dl
    tmin = np.nanmax(np.minimum(t1, t2), -1)
    tmax = np.nanmin(np.maximum(t1, t2), -1)
    hit = (tmax >= tmin) & (tmin > 0)
    return np.where(hit, tmin, 0.0)  # the ray has z = 1, so the parameter is the depth


def write_scene(root: Path, name: str = "test_scene1", class_id: int = 1) -> Path:
    scene = root / name
    for d in ("rgb", "depth", "instance", "labels"):
        (scene / d).mkdir(parents=True)
    R = _pose()
    depth = _render_box(R, T, SIZE)
    mask = depth > 0
    rgb = np.full((H, W, 3), 90, np.uint8)
    rgb[mask] = (40, 40, 200)  # BGR on disk
    inst = np.full((H, W, 3), 255, np.uint8)
    inst[mask] = 3
    cv2.imwrite(str(scene / "rgb/000000.png"), rgb)
    cv2.imwrite(str(scene / "depth/000000.png"), np.round(depth * 1000).astype(np.uint16))
    cv2.imwrite(str(scene / "instance/000000.png"), inst)
    np.savetxt(scene / "intrinsics.txt", K)
    with open(scene / "labels/000000_label.pkl", "wb") as f:
        pickle.dump({"class_ids": np.array([class_id]), "instance_ids": np.array([3]),
                     "bboxes": np.array([[0, 0, 10, 10]]), "rotations": R[None], "translations": T[None],
                     "gt_scales": SIZE[None]}, f)
    return scene


def test_housecat6d_frame(tmp_path):
    scene = write_scene(tmp_path)
    f = load_housecat6d_frame(scene, "000000")
    assert f.categories is HOUSECAT6D and f.categories[int(f.class_ids[0])].name == "box"
    assert f.instance_ids.tolist() == [3] and (f.width, f.height) == (W, H)
    np.testing.assert_allclose(f.K, K)
    assert f.rgb[f.instance_map == 3][0].tolist() == [200, 40, 40]  # RGB order
    p = f.poses[0]
    np.testing.assert_allclose(p.R, _pose(), atol=1e-12)
    np.testing.assert_allclose(p.t, T)
    np.testing.assert_allclose(p.size, SIZE)
    # Every observed point lies on the known box (1 mm depth quantisation).
    pts, _ = depth_to_points(f.depth, f.K, f.masks()[0])
    assert len(pts) > 200
    local = (pts - p.t) @ p.R
    assert np.all(np.abs(local) <= SIZE / 2 + 2e-3)
    assert np.abs(np.abs(local) - SIZE / 2).min(1).max() < 2e-3  # on a face


def test_housecat6d_dataset_and_errors(tmp_path):
    write_scene(tmp_path, "test_scene1")
    write_scene(tmp_path, "scene2")
    assert len(HouseCat6DDataset(tmp_path)) == 2
    ds = HouseCat6DDataset(tmp_path, split="test")
    assert len(ds) == 1 and ds[0].frame_id == "test_scene1/000000"
    assert len(HouseCat6DDataset(tmp_path, split="train")) == 1
    bad = write_scene(tmp_path / "x", "scene9", class_id=11)
    with pytest.raises(ValueError, match=r"000000_label.pkl: class id 11 unknown"):
        load_housecat6d_frame(bad, "000000")
