"""PnP on predicted cuboid keypoints: exact pose from perfect keypoints, metric scale from depth."""

import numpy as np
import pytest

from demopose.categories import NOCS_REAL
from demopose.geometry import box_corners_in_camera, project_points, rotation_angle_deg
from demopose.geometry.camera import REAL_INTRINSICS
from demopose.geometry.pnp import cuboid_depth, scale_from_depth, solve_cuboid_pnp
from demopose.models.keypoint_pose import poses_from_keypoints

K = REAL_INTRINSICS.K


def _scene(seed: int):
    g = np.random.default_rng(seed)
    R = _rot(g)
    size = g.uniform(0.06, 0.3, 3)
    t = np.array([g.uniform(-0.1, 0.1), g.uniform(-0.1, 0.1), g.uniform(0.5, 1.0)])
    kp = project_points(np.concatenate([box_corners_in_camera(R, t, size), t[None]]), K)
    return R, t, size, kp


def _rot(g):
    q = g.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@pytest.mark.parametrize("seed", range(5))
def test_pnp_recovers_exact_pose_up_to_scale(seed):
    R, t, size, kp = _scene(seed)
    s = np.linalg.norm(size)
    res = solve_cuboid_pnp(kp, size / s, K)
    assert res.ok
    assert rotation_angle_deg(res.R, R) < 1e-4
    assert np.allclose(res.t_unit * s, t, atol=1e-6)


def _render_depth(R, t, size, H=480, W=640):
    v, u = np.mgrid[0:H, 0:W]
    uv = np.stack([u.ravel(), v.ravel()], 1).astype(np.float64)
    z = cuboid_depth(uv, R, t, size, K).reshape(H, W)
    return np.where(np.isfinite(z), z, 2.5).astype(np.float64)  # a wall behind the object


@pytest.mark.parametrize("seed", range(3))
def test_metric_scale_from_depth_and_from_category_mean(seed):
    R, t, size, kp = _scene(seed)
    depth = _render_depth(R, t, size)
    box = np.concatenate([kp.min(0), kp.max(0)])
    rel = size / np.linalg.norm(size)
    ps = poses_from_keypoints(kp[None], rel[None], np.array([3]), np.array([0.9]), K, NOCS_REAL,
                              boxes=box[None], depth=depth)
    assert len(ps) == 1 and ps.class_ids[0] == 3 and ps.scores[0] == 0.9
    assert rotation_angle_deg(ps.R[0], R) < 1e-4
    assert np.allclose(ps.t[0], t, atol=1e-5) and np.allclose(ps.size[0], size, atol=1e-5)
    # without depth the scale is the category's mean diagonal
    ps2 = poses_from_keypoints(kp[None], rel[None], np.array([3]), np.array([0.9]), K, NOCS_REAL)
    lam = np.linalg.norm(NOCS_REAL[3].mean_size)
    assert np.allclose(ps2.size[0], rel * lam) and np.allclose(ps2.t[0], t / np.linalg.norm(size) * lam, atol=1e-6)


def test_cuboid_depth_front_face():
    R, t, size = np.eye(3), np.array([0.0, 0.0, 1.0]), np.array([0.2, 0.2, 0.4])
    z = cuboid_depth(np.array([[K[0, 2], K[1, 2]], [0.0, 0.0]]), R, t, size, K)
    assert z[0] == pytest.approx(0.8) and np.isnan(z[1])


def test_scale_from_depth_known_scale_and_no_pixels():
    R, t, size, kp = _scene(7)
    s = np.linalg.norm(size)
    depth = _render_depth(R, t, size)
    box = np.concatenate([kp.min(0), kp.max(0)])
    lam = scale_from_depth(depth, box, R, t / s, size / s, K)
    assert lam == pytest.approx(s, rel=1e-9)
    # a box outside the image, or no valid depth inside it: no scale
    assert scale_from_depth(depth, np.array([700.0, 500.0, 720.0, 520.0]), R, t / s, size / s, K) is None
    assert scale_from_depth(np.zeros_like(depth), box, R, t / s, size / s, K) is None
