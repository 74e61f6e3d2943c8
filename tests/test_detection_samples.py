"""Frame-level detection samples: flip corner permutation, targets, letterbox, symmetric canonicalisation."""

from pathlib import Path

import numpy as np
import pytest

from demopose.data.detection_samples import (
    DetectionAugment,
    FrameDetectionDataset,
    collate_detection,
    flip_permutation,
    frame_targets,
    make_detection_sample,
)
from demopose.data.nocs import load_frame
from demopose.geometry import box_corners_in_camera, project_points
from demopose.geometry.pose import Pose
from demopose.geometry.rotation import rotation_about_axis

REAL = Path(__file__).parent / "fixtures" / "nocs_sample" / "Real" / "test" / "scene_1" / "0000"


@pytest.fixture(scope="module")
def frame():
    return load_frame(REAL, load_nocs=False)


def test_flip_permutation_is_an_involution_swapping_one_axis():
    assert flip_permutation(0).tolist() == [2, 3, 0, 1, 6, 7, 4, 5, 8]  # NOCS order: x is the middle sign
    assert flip_permutation(2).tolist() == [1, 0, 3, 2, 5, 4, 7, 6, 8]
    for axis in (0, 1, 2):
        p = flip_permutation(axis)
        assert (p[p] == np.arange(9)).all() and (p != np.arange(9))[:8].all()


@pytest.mark.parametrize("axis", [0, 2])
def test_flip_permutation_maps_projected_corners(axis):
    """Mirroring the image = imaging the reflected pose R' = F R M, t' = F t with the mirrored camera."""
    g = np.random.default_rng(axis)
    q, _ = np.linalg.qr(g.normal(size=(3, 3)))
    R = q * np.sign(np.linalg.det(q))
    t, size = np.array([0.05, -0.03, 0.7]), np.array([0.1, 0.2, 0.15])
    W = 640
    K = np.array([[591.0, 0, 322.5], [0, 590.0, 244.1], [0, 0, 1]])
    kp = project_points(np.concatenate([box_corners_in_camera(R, t, size), t[None]]), K)
    flipped = kp.copy()
    flipped[:, 0] = W - 1 - flipped[:, 0]
    flipped = flipped[flip_permutation(axis)]
    F = np.diag([-1.0, 1, 1])
    M = np.diag([1.0, 1, 1])
    M[axis, axis] = -1
    R2, t2 = F @ R @ M, F @ t
    assert np.linalg.det(R2) == pytest.approx(1.0)
    K2 = K.copy()
    K2[0, 2] = W - 1 - K[0, 2]
    want = project_points(np.concatenate([box_corners_in_camera(R2, t2, size), t2[None]]), K2)
    assert np.allclose(flipped, want, atol=1e-9)


def test_targets_and_letterbox(frame):
    t = frame_targets(frame)
    assert len(t.labels) == len(frame) and t.keypoints.shape == (len(frame), 9, 2)
    assert np.allclose(np.linalg.norm(t.rel_size, axis=1), 1.0)
    s = make_detection_sample(frame, (320, 320))
    assert s["image"].shape == (3, 320, 320) and s["image"].dtype == np.float32
    r = 0.5  # 640x480 -> 320x240, top-left
    assert np.allclose(s["gt_keypoints"], (t.keypoints + 0.5) * r - 0.5, atol=1e-4)
    assert np.allclose(s["gt_boxes"], (t.boxes + 0.5) * r - 0.5, atol=1e-4)
    assert np.abs(s["image"][:, 245:]).max() == pytest.approx(max(np.abs(-np.array([123.675, 116.28, 103.53])
                                                                            / [58.395, 57.12, 57.375])), rel=1e-4)


def test_forced_flip_sample_mirrors_image_and_permutes_keypoints(frame):
    aug = DetectionAugment(p_flip=1.0, scale=(1.0, 1.0), translate=0.0, brightness=0.0, contrast=(1.0, 1.0),
                           saturation=(1.0, 1.0), white_balance=0.0, p_blur=0.0, p_noise=0.0, p_jpeg=0.0)
    a = make_detection_sample(frame, (320, 320))
    b = make_detection_sample(frame, (320, 320), np.random.default_rng(0), aug)
    assert np.allclose(b["image"], a["image"][:, :, ::-1], atol=1e-4)
    t = frame_targets(frame)
    for g in range(len(t.labels)):
        want = a["gt_keypoints"][g][flip_permutation(int(t.flip_axis[g]))].copy()
        want[:, 0] = 319 - want[:, 0]
        assert np.allclose(b["gt_keypoints"][g], want, atol=1e-4)
    assert np.allclose(b["gt_boxes"][:, [0, 2]], 319 - a["gt_boxes"][:, [2, 0]], atol=1e-4)
    # laptop / mug (mirror-symmetric about their xy plane) reflect z, the others x
    names = [frame.categories[int(c) + 1].name for c in t.labels]
    assert all((ax == 2) == (n in ("laptop", "mug")) for ax, n in zip(t.flip_axis, names))


def test_y_symmetric_rotation_is_canonical_before_corner_targets(frame):
    t0 = frame_targets(frame)
    poses = []
    for p in frame.poses:
        R = p.R @ rotation_about_axis(np.array(0.7), "y")
        poses.append(Pose(R, p.t, p.size, p.class_id, p.score))
    rotated = type(frame)(**{**frame.__dict__, "poses": poses})
    t1 = frame_targets(rotated)
    for j in range(len(frame)):
        sym = frame.categories.is_y_symmetric(int(frame.class_ids[j]), bool(frame.handle_visible[j]))
        same = np.allclose(t0.keypoints[j], t1.keypoints[j], atol=1e-6)
        assert same == sym, frame.categories[int(frame.class_ids[j])].name


def test_dataset_keys_and_collate(frame):
    ds = FrameDetectionDataset([frame, frame], (128, 96), train=True)
    a, b = ds[(0, 5)], ds[(0, 5)]
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["gt_keypoints"], b["gt_keypoints"])
    batch = collate_detection([ds[(0, 1)], ds[(1, 2)]])
    assert batch["image"].shape == (2, 3, 96, 128)
    G = batch["gt_valid"].shape[1]
    assert batch["gt_keypoints"].shape == (2, G, 9, 2) and batch["gt_valid"].any()
    with pytest.raises(ValueError, match="multiples of 32"):
        FrameDetectionDataset([frame], (100, 96))


def test_photometric_degradations_change_pixels_not_targets(frame):
    """Blur, noise and JPEG each alter the image (and only the image) when forced on; off, the sample is the
    geometric augmentation alone."""
    still = dict(p_flip=0.0, scale=(1.0, 1.0), translate=0.0, brightness=0.0, contrast=(1.0, 1.0),
                 saturation=(1.0, 1.0), white_balance=0.0)
    plain = make_detection_sample(frame, (320, 320), np.random.default_rng(0),
                                  DetectionAugment(**still, p_blur=0.0, p_noise=0.0, p_jpeg=0.0))
    clean = make_detection_sample(frame, (320, 320))
    assert np.allclose(plain["image"], clean["image"], atol=1e-4)
    for knob in ("p_blur", "p_noise", "p_jpeg"):
        off = {"p_blur": 0.0, "p_noise": 0.0, "p_jpeg": 0.0, knob: 1.0}
        s = make_detection_sample(frame, (320, 320), np.random.default_rng(0), DetectionAugment(**still, **off))
        assert np.abs(s["image"] - clean["image"]).mean() > 1e-3, knob
        assert np.array_equal(s["gt_keypoints"], clean["gt_keypoints"]), knob
    blurred = make_detection_sample(frame, (320, 320), np.random.default_rng(0),
                                    DetectionAugment(**still, p_blur=1.0, p_noise=0.0, p_jpeg=0.0,
                                                     blur_sigma=(1.5, 1.5)))
    # blur lowers the high-frequency energy (horizontal differences) of the image
    assert np.abs(np.diff(blurred["image"], axis=2)).mean() < np.abs(np.diff(clean["image"], axis=2)).mean()


def test_frame_cache_gives_identical_samples(frame):
    cached = FrameDetectionDataset([frame, frame], (128, 96), train=True, cache=True)
    fresh = FrameDetectionDataset([frame, frame], (128, 96), train=True)
    for key in [(0, 3), (1, 4), (0, 3)]:
        a, b = cached[key], fresh[key]
        assert all(np.array_equal(a[k], b[k]) for k in a), key
    assert set(cached.cache) == {0, 1}
