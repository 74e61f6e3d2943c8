"""The optional RGB crop of per-instance samples (CleanPose / AG-Pose input)."""

from pathlib import Path

import numpy as np
import pytest

from demopose.data.instances import InstanceDataset, collate_instances, crop_rgb, sample_instance
from demopose.data.nocs import load_frame

REAL = Path(__file__).parent / "fixtures" / "nocs_sample" / "Real" / "test" / "scene_1" / "0000"


@pytest.fixture(scope="module")
def frame():
    return load_frame(REAL)


def test_crop_maps_pixels_onto_the_same_colours(frame):
    j = 0
    mask = frame.instance_map == frame.instance_ids[j]
    s = sample_instance(frame, mask, int(frame.class_ids[j]), np.random.default_rng(0), index=j, rgb_size=224)
    assert s["rgb"].shape == (3, 224, 224) and s["rgb"].dtype == np.float32
    assert s["rgb"].min() >= 0 and s["rgb"].max() <= 1
    uv = s["rgb_pixels"]
    assert uv.shape == (1028, 2) and (uv >= -0.5).all() and (uv <= 223.5).all()
    # nearest crop pixel colour ~ image colour at the point's pixel (bilinear resize: loose tolerance)
    cu, cv = np.clip(np.round(uv).astype(int), 0, 223).T
    crop_col = s["rgb"][:, cv, cu].T
    u, v = s["pixels"].astype(int).T
    img_col = frame.rgb[v, u].astype(np.float32) / 255
    assert np.median(np.abs(crop_col - img_col)) < 0.06
    # without rgb_size the sample is unchanged (backwards compatible)
    s0 = sample_instance(frame, mask, int(frame.class_ids[j]), np.random.default_rng(0), index=j)
    assert "rgb" not in s0 and np.array_equal(s0["points"], s["points"])


def test_crop_known_answer_window():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 90:110] = 255  # a 20 px white square; window side = 40 px centred on it
    crop, uv = crop_rgb(img, np.array([90, 40, 110, 60]), np.array([[89.5, 39.5], [100.0, 50.0]]), size=40)
    assert crop.shape == (3, 40, 40)
    np.testing.assert_allclose(uv, [[9.5, 9.5], [20.0, 20.0]], atol=1e-5)
    assert crop[:, 10:30, 10:30].min() == 1.0 and crop[:, :9, :].max() == 0.0


def test_dataset_option_collates(frame):
    ds = InstanceDataset([frame], n_points=64, train=False, rgb_size=32)
    b = collate_instances([ds[0], ds[1]])
    assert b["rgb"].shape == (2, 3, 32, 32) and b["rgb_pixels"].shape == (2, 64, 2)
