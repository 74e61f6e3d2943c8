"""Per-instance samples on the REAL275 fixture frame and augmentation consistency."""

from pathlib import Path

import numpy as np
import pytest

from demopose.data.instances import (
    AugmentConfig,
    InstanceDataset,
    augment_instance,
    collate_instances,
    remove_depth_outliers,
    sample_instance,
    sample_points,
)
from demopose.data.nocs import load_frame
from demopose.geometry import box_corners, project_points, random_rotation

REAL = Path(__file__).parent / "fixtures" / "nocs_sample" / "Real" / "test" / "scene_1" / "0000"


@pytest.fixture(scope="module")
def frame():
    return load_frame(REAL)


def test_sample_instance_points_and_pixels(frame):
    rng = np.random.default_rng(0)
    for j in range(len(frame)):
        mask = frame.instance_map == frame.instance_ids[j]
        s = sample_instance(frame, mask, int(frame.class_ids[j]), rng, index=j)
        assert s["points"].shape == (1028, 3) and s["pixels"].shape == (1028, 2)
        # points re-project onto their pixels, which lie inside the mask
        np.testing.assert_allclose(project_points(s["points"].astype(np.float64), frame.K), s["pixels"], atol=1e-3)
        u, v = s["pixels"].astype(int).T
        assert mask[v, u].all()
        # the observed surface is within the object's box around the gt centre
        local = (s["points"] - s["t"]) @ s["R"]
        assert (np.abs(local) <= s["size"] / 2 + 0.02).mean() > 0.95
        np.testing.assert_allclose(s["size_residual"], s["size"] - s["mean_size"], atol=1e-6)
    assert sample_instance(frame, np.zeros_like(mask), 1, rng) is None


def test_sampling_helpers():
    rng = np.random.default_rng(1)
    idx = sample_points(10, 25, rng)
    assert len(idx) == 25 and set(idx) == set(range(10))
    assert len(set(sample_points(100, 25, rng))) == 25
    keep = remove_depth_outliers(np.array([0.80, 0.81, 0.79, 0.82, 1.6]), max_extent=0.2)
    np.testing.assert_array_equal(keep, [1, 1, 1, 1, 0])


@pytest.mark.parametrize("sym", [False, True])
def test_augmentation_keeps_points_consistent_with_targets(sym):
    rng = np.random.default_rng(2)
    R = random_rotation(generator=None).numpy()
    size = np.array([0.1, 0.2, 0.08])
    t = np.array([0.05, -0.02, 0.7])
    # points on the box surface: corners and face centres, in the camera frame
    local = np.concatenate([box_corners(size), np.diag(size / 2), -np.diag(size / 2)])
    s = {"points": (local @ R.T + t).astype(np.float32), "R": R.astype(np.float32), "t": t.astype(np.float32),
         "size": size.astype(np.float32), "mean_size": np.array([0.1, 0.1, 0.1], np.float32),
         "y_symmetric": np.bool_(sym), "model_points": local.astype(np.float32)}
    cfg = AugmentConfig(p_scale=1, p_rt=1, p_cage=1, p_noise=0)
    for _ in range(5):
        out = augment_instance(s, rng, cfg, cage=True)
        back = (out["points"].astype(np.float64) - out["t"]) @ out["R"].astype(np.float64)
        assert np.abs(back).max(0) == pytest.approx(out["size"] / 2, rel=1e-4)  # points still span the box
        assert np.linalg.det(out["R"]) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(out["model_points"].max(0) - out["model_points"].min(0), out["size"], rtol=1e-5)
        if sym:
            e = out["size"] / size
            assert e[0] == pytest.approx(e[2], rel=1e-4)  # x and z scale together for y-symmetric shapes


def test_instance_dataset_deterministic_and_collate(frame):
    ds = InstanceDataset([frame], n_points=256, train=True)
    assert len(ds) == len(frame)
    a, b = ds[(2, 123)], ds[(2, 123)]
    np.testing.assert_array_equal(a["points"], b["points"])
    assert not np.array_equal(ds[(2, 124)]["points"], a["points"])
    batch = collate_instances([ds[(i, i)] for i in range(3)])
    assert batch["points"].shape == (3, 256, 3) and batch["R"].shape == (3, 3, 3)
    assert batch["class_ids"].dtype.is_floating_point is False


def test_mask_window_and_bbox_known_answer():
    from demopose.data.instances import mask_bbox, mask_window

    m = np.zeros((6, 8), bool)
    assert mask_window(m) is None
    m[2, 3] = m[4, 6] = True
    assert mask_window(m) == (2, 5, 3, 7)  # rows 2..4, columns 3..6
    assert mask_bbox(m).tolist() == [3.0, 2.0, 7.0, 5.0]  # x1 y1 x2 y2, exclusive ends


def test_cached_instances_give_the_same_samples(frame):
    """The in-memory instance cache (windows of depth, mask and colour) changes no sample: points, pixels, RGB
    crops, letterboxed images and targets equal the uncached ones, with and without mask noise."""
    aug = AugmentConfig(p_mask_noise=0.5)
    kw = dict(n_points=300, train=True, augment=aug, rgb_size=32, image_size=(160, 128))
    plain, cached = InstanceDataset([frame], **kw), InstanceDataset([frame], cache=True, **kw)
    assert len(plain) == len(cached) and cached._crops
    for i in range(len(plain)):
        for seed in (i, 1000 + i, 2000 + i):
            a, b = plain[(i, seed)], cached[(i, seed)]
            assert a.keys() == b.keys()
            for k in a:
                np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=f"instance {i}, {k}")
    # a window, not the frame: far less memory than the frame's depth and mask
    crop = cached._crops[0]
    assert crop.depth.size < frame.depth.size / 4 and crop.mask.shape == crop.depth.shape
