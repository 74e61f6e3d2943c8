"""Geometry: round trips, known values, batch shapes, gradients and failure paths."""

import math

import numpy as np
import pytest
import torch

from demopose.geometry import (
    BOX_EDGES,
    Pose,
    axis_angle_to_rotation_matrix,
    backproject_pixels,
    box_corners,
    box_corners_in_camera,
    canonicalize_y_symmetric,
    depth_to_points,
    euler_xyz_to_rotation_matrix,
    orthonormalize,
    pose_from_nocs,
    pose_to_nocs,
    project_points,
    quaternion_to_rotation_matrix,
    random_rotation,
    robust_umeyama,
    rotation_6d_to_matrix,
    rotation_6d_y_to_matrix,
    rotation_about_axis,
    rotation_angle_deg,
    rotation_matrix_to_6d,
    rotation_matrix_to_axis_angle,
    rotation_matrix_to_quaternion,
    umeyama,
    y_axis_angle_deg,
    y_symmetric_candidates,
)
from demopose.geometry.camera import REAL_INTRINSICS, Intrinsics

GEN = torch.Generator().manual_seed(0)


@pytest.mark.parametrize("batch", [(), (1,), (7,), (2, 3)])
@pytest.mark.parametrize(
    "to_rep,from_rep",
    [
        (rotation_matrix_to_quaternion, quaternion_to_rotation_matrix),
        (rotation_matrix_to_axis_angle, axis_angle_to_rotation_matrix),
        (rotation_matrix_to_6d, rotation_6d_to_matrix),
    ],
)
def test_rotation_round_trips(batch, to_rep, from_rep):
    n = int(np.prod(batch)) if batch else 1
    R = random_rotation(n, generator=GEN).reshape(batch + (3, 3))
    back = from_rep(to_rep(R))
    assert back.shape == R.shape
    torch.testing.assert_close(back, R, atol=1e-10, rtol=0)


def test_rotation_branches_and_special_angles():
    # identity, 180° about each axis (quaternion w = 0 branches), tiny angles
    Rs = [torch.eye(3, dtype=torch.float64)]
    Rs += [rotation_about_axis(torch.tensor(math.pi, dtype=torch.float64), a) for a in "xyz"]
    Rs += [rotation_about_axis(torch.tensor(1e-8, dtype=torch.float64), "z")]
    R = torch.stack(Rs)
    torch.testing.assert_close(quaternion_to_rotation_matrix(rotation_matrix_to_quaternion(R)), R)
    torch.testing.assert_close(axis_angle_to_rotation_matrix(rotation_matrix_to_axis_angle(R)), R)
    aa = rotation_matrix_to_axis_angle(R)
    torch.testing.assert_close(aa.norm(dim=-1), torch.tensor([0, math.pi, math.pi, math.pi, 1e-8],
                                                             dtype=torch.float64))


def test_known_values():
    R = rotation_about_axis(torch.tensor(math.pi / 2, dtype=torch.float64), "z")
    torch.testing.assert_close(R @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                               torch.tensor([0.0, 1, 0], dtype=torch.float64))
    q = rotation_matrix_to_quaternion(R)
    torch.testing.assert_close(q, torch.tensor([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)],
                                               dtype=torch.float64))
    assert rotation_angle_deg(R, torch.eye(3, dtype=torch.float64)).item() == pytest.approx(90.0)


def test_numpy_in_numpy_out():
    R = random_rotation(4, generator=GEN).numpy()
    q = rotation_matrix_to_quaternion(R)
    assert isinstance(q, np.ndarray) and q.shape == (4, 4)
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(quaternion_to_rotation_matrix(q), R, atol=1e-12)


def test_6d_gradcheck_and_orthonormalize():
    x = torch.randn(3, 6, dtype=torch.float64, generator=GEN, requires_grad=True)
    assert torch.autograd.gradcheck(rotation_6d_to_matrix, (x,))
    R = rotation_6d_to_matrix(x.detach())
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(3, 3, 3))
    torch.testing.assert_close(torch.det(R), torch.ones(3, dtype=torch.float64))
    noisy = R + 1e-3 * torch.randn(3, 3, 3, dtype=torch.float64, generator=GEN)
    assert rotation_angle_deg(orthonormalize(noisy), R).max() < 0.5


@pytest.mark.parametrize("batch", [(), (1,), (5,), (2, 3)])
def test_6d_y_first_keeps_y_and_is_proper(batch):
    d6 = torch.randn(*batch, 6, dtype=torch.float64, generator=GEN)
    R = rotation_6d_y_to_matrix(d6)
    assert R.shape == (*batch, 3, 3)
    eye = torch.eye(3, dtype=torch.float64).expand(*batch, 3, 3)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye)
    torch.testing.assert_close(torch.det(R), torch.ones(batch, dtype=torch.float64))
    torch.testing.assert_close(R[..., 1], d6[..., 3:] / d6[..., 3:].norm(dim=-1, keepdim=True))
    # x lies in the plane of a and y, on a's side
    assert ((R[..., 0] * d6[..., :3]).sum(-1) >= 0).all()
    torch.testing.assert_close((R[..., 2] * d6[..., :3]).sum(-1), torch.zeros(batch, dtype=torch.float64))


def test_6d_y_first_known_value_round_trip_and_gradcheck():
    R = random_rotation(4, generator=GEN)
    torch.testing.assert_close(rotation_6d_y_to_matrix(torch.cat([R[..., 0], R[..., 1]], -1)), R)
    torch.testing.assert_close(rotation_6d_y_to_matrix(torch.tensor([2.0, 0, 0, 0, 3, 0])), torch.eye(3))
    assert isinstance(rotation_6d_y_to_matrix(np.ones((2, 6))), np.ndarray)
    x = torch.randn(3, 6, dtype=torch.float64, generator=GEN, requires_grad=True)
    assert torch.autograd.gradcheck(rotation_6d_y_to_matrix, (x,))


def test_euler_xyz_composes_x_then_y_then_z():
    a = torch.tensor([[0.3, -0.2, 1.1], [0.0, 0.0, 0.0]], dtype=torch.float64)
    R = euler_xyz_to_rotation_matrix(a)
    ref = (rotation_about_axis(a[:, 0], "x") @ rotation_about_axis(a[:, 1], "y")
           @ rotation_about_axis(a[:, 2], "z"))
    torch.testing.assert_close(R, ref)
    torch.testing.assert_close(R[1], torch.eye(3, dtype=torch.float64))
    quarter = euler_xyz_to_rotation_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(quarter @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                               torch.tensor([0.0, 1, 0], dtype=torch.float64))
    assert euler_xyz_to_rotation_matrix(torch.zeros(2, 3, 3)).shape == (2, 3, 3, 3)
    assert euler_xyz_to_rotation_matrix(torch.zeros(3, dtype=torch.float32)).dtype == torch.float32
    x = torch.randn(2, 3, dtype=torch.float64, generator=GEN, requires_grad=True)
    assert torch.autograd.gradcheck(euler_xyz_to_rotation_matrix, (x,))


def test_rotation_distances():
    R = random_rotation(generator=GEN)
    Ry = rotation_about_axis(torch.tensor(math.radians(37.0), dtype=torch.float64), "y")
    Rx = rotation_about_axis(torch.tensor(math.radians(11.0), dtype=torch.float64), "x")
    assert rotation_angle_deg(R @ Ry, R).item() == pytest.approx(37.0)
    assert y_axis_angle_deg(R @ Ry, R).item() == pytest.approx(0.0, abs=1e-5)
    assert y_axis_angle_deg(R @ Rx, R).item() == pytest.approx(11.0)
    # unclipped cosine can exceed 1 by rounding -> NaN, as the NOCS code; clipped never does
    assert not torch.isnan(rotation_angle_deg(R, R)).any()


def test_pose_nocs_round_trip_and_gpv_convention():
    R = random_rotation(generator=GEN).numpy()
    pose = Pose(R, [0.1, -0.2, 0.8], [0.1, 0.2, 0.05], class_id=3)
    RT, scales = pose.to_nocs()
    assert np.linalg.norm(scales) == pytest.approx(1.0)
    assert np.cbrt(np.linalg.det(RT[:3, :3])) == pytest.approx(pose.scale)
    back = Pose.from_nocs(RT, scales)
    np.testing.assert_allclose(back.R, R, atol=1e-12)
    np.testing.assert_allclose(back.size, pose.size, atol=1e-12)
    # GPV files: RT = [R | t], scales metric
    R2, t2, s2 = pose_from_nocs(pose.matrix(), pose.size)
    np.testing.assert_allclose(s2, pose.size, atol=1e-12)
    np.testing.assert_allclose(t2, pose.t)
    # batched
    RTb, sb = pose_to_nocs(np.stack([R, R]), np.zeros((2, 3)) + [0, 0, 1], np.stack([pose.size] * 2))
    assert RTb.shape == (2, 4, 4) and sb.shape == (2, 3)


def test_pose_errors():
    with pytest.raises(ValueError, match="RT"):
        pose_from_nocs(np.full((4, 4), np.nan), np.ones(3))
    with pytest.raises(ValueError, match="determinant"):
        pose_from_nocs(np.diag([1.0, 1.0, -1.0, 1.0]), np.ones(3))
    with pytest.raises(ValueError, match=r"Pose.t: expected shape \(3\)"):
        Pose(np.eye(3), np.zeros(4), np.ones(3))


def test_box_corners_nocs_order():
    c = box_corners(np.array([2.0, 4.0, 6.0]))
    assert c.shape == (8, 3)
    np.testing.assert_allclose(c[0], [1, 2, 3])
    np.testing.assert_allclose(c[1], [1, 2, -3])
    np.testing.assert_allclose(c[2], [-1, 2, 3])
    np.testing.assert_allclose(c[7], [-1, -2, -3])
    # every edge joins corners that differ in exactly one coordinate
    for i, j in BOX_EDGES:
        assert np.sum(c[i] != c[j]) == 1
    R = rotation_about_axis(np.array(np.pi / 2), "z")
    cam = box_corners_in_camera(R, np.array([0, 0, 1.0]), np.array([2.0, 4.0, 6.0]))
    np.testing.assert_allclose(cam[0], [-2, 1, 4], atol=1e-12)


def test_projection_round_trip():
    K = REAL_INTRINSICS.K
    pts = np.random.default_rng(0).uniform([-0.3, -0.2, 0.5], [0.3, 0.2, 1.5], size=(100, 3))
    uv = project_points(pts, K)
    back = backproject_pixels(uv, pts[:, 2], K)
    np.testing.assert_allclose(back, pts, atol=1e-12)
    # principal point projects to (cx, cy)
    np.testing.assert_allclose(project_points(np.array([[0, 0, 2.0]]), K)[0], [322.525, 244.11084])


def test_depth_to_points_pixel_convention():
    K = Intrinsics(100.0, 100.0, 2.0, 1.0, 5, 3).K
    depth = np.zeros((3, 5), np.float32)
    depth[1, 2] = 2.0  # the principal point pixel (row 1, column 2)
    depth[0, 4] = 1.0
    pts, uv = depth_to_points(depth, K)
    np.testing.assert_array_equal(uv, [[4, 0], [2, 1]])
    np.testing.assert_allclose(pts[1], [0, 0, 2.0])
    np.testing.assert_allclose(pts[0], [0.02, -0.01, 1.0], rtol=1e-6)
    mask = np.zeros((3, 5), bool)
    mask[1, 2] = True
    assert depth_to_points(depth, K, mask)[0].shape == (1, 3)
    with pytest.raises(ValueError, match="mask"):
        depth_to_points(depth, K, np.zeros((2, 2), bool))


def test_intrinsics_scaled():
    s = REAL_INTRINSICS.scaled(0.5)
    assert (s.width, s.height) == (320, 240)
    # pixel centres: corner of pixel (0,0) at -0.5 maps to -0.5
    assert s.cx == pytest.approx((322.525 + 0.5) / 2 - 0.5)


def test_umeyama_recovers_similarity_batched():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(4, 30, 3))
    R = random_rotation(4, generator=GEN).numpy()
    s = rng.uniform(0.1, 2.0, size=4)
    t = rng.normal(size=(4, 3))
    dst = s[:, None, None] * np.einsum("bij,bnj->bni", R, src) + t[:, None]
    s2, R2, t2 = umeyama(src, dst)
    np.testing.assert_allclose(s2, s, rtol=1e-10)
    np.testing.assert_allclose(R2, R, atol=1e-10)
    np.testing.assert_allclose(t2, t, atol=1e-10)
    # reflection-free even for a planar, mirrored configuration
    _, R3, _ = umeyama(src[0], src[0] * [1, 1, -1])
    assert np.linalg.det(R3) == pytest.approx(1.0)


def test_robust_umeyama_rejects_outliers():
    rng = np.random.default_rng(2)
    src = rng.uniform(-0.5, 0.5, size=(200, 3))
    R = random_rotation(generator=GEN).numpy()
    dst = 0.2 * src @ R.T + [0.1, 0.0, 0.9]
    dst[:60] += rng.normal(scale=0.2, size=(60, 3))  # 30 % outliers
    s, R2, t, inl = robust_umeyama(src, dst, threshold=0.005, seed=0)
    assert s == pytest.approx(0.2, rel=1e-6)
    assert rotation_angle_deg(R2, R) < 1e-4
    assert inl[60:].all() and not inl[:60].any()
    with pytest.raises(ValueError, match="at least 3"):
        robust_umeyama(src[:2], dst[:2], 0.01)


def test_y_symmetry_helpers():
    R = random_rotation(generator=GEN)
    Ry = rotation_about_axis(torch.tensor(1.234, dtype=torch.float64), "y")
    c1, c2 = canonicalize_y_symmetric(R), canonicalize_y_symmetric(R @ Ry)
    torch.testing.assert_close(c1, c2)
    torch.testing.assert_close(c1[:, 1], R[:, 1])  # y axis untouched
    cands = y_symmetric_candidates(R, 20)
    assert cands.shape == (20, 3, 3)
    angles = rotation_angle_deg(cands, R)
    torch.testing.assert_close(angles.sort().values[:3], torch.tensor([0.0, 18.0, 18.0], dtype=torch.float64),
                               atol=1e-4, rtol=0)
