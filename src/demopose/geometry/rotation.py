"""Rotation representations and distances.

Convention:
    Rotation matrices act on column vectors (``x_cam = R @ x_obj``), are proper (det +1) and have shape
    ``(*, 3, 3)``. Quaternions are ``(w, x, y, z)`` with ``w >= 0`` after conversion from a matrix.
    Axis-angle vectors are ``(*, 3)``: unit axis times angle in radians. The 6D representation
    (Zhou et al., "On the Continuity of Rotation Representations in Neural Networks", CVPR 2019) is
    the first two *columns* of the matrix, concatenated: ``(*, 6) = [R[:, 0], R[:, 1]]``. The two-vector
    form of GPV-Pose is the object's y ("green") and x ("red") axes in the camera frame, ``(B, 3)`` each,
    with ``(B,)`` confidences (:func:`vectors_to_rotation`; torch only).
    Angles returned by distance functions are in degrees.

    :func:`rotation_6d_y_to_matrix` is the y-first 6D variant of AG-Pose / CleanPose, whose primary
    column is the object's y axis (the symmetry axis of the NOCS categories). Euler angles
    (:func:`euler_xyz_to_rotation_matrix`) are intrinsic x-y-z: ``R = Rx(a) @ Ry(b) @ Rz(c)``.

Every function takes torch tensors (differentiable, any device) or NumPy arrays (NumPy out).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from demopose.geometry._backend import numpy_compatible

__all__ = [
    "axis_angle_to_rotation_matrix",
    "euler_xyz_to_rotation_matrix",
    "quaternion_to_rotation_matrix",
    "random_rotation",
    "rectify_vectors",
    "rotation_6d_to_matrix",
    "rotation_6d_y_to_matrix",
    "rotation_about_axis",
    "rotation_angle_deg",
    "rotation_from_vectors",
    "rotation_matrix_to_6d",
    "rotation_matrix_to_axis_angle",
    "rotation_matrix_to_quaternion",
    "vectors_to_rotation",
    "y_axis_angle_deg",
    "orthonormalize",
]


@numpy_compatible
def quaternion_to_rotation_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternion ``(*, 4)`` in ``(w, x, y, z)`` order -> rotation matrix ``(*, 3, 3)``.

    The quaternion is normalised first, so any non-zero 4-vector is accepted.
    """
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    m = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


@numpy_compatible
def rotation_matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``(*, 3, 3)`` -> unit quaternion ``(*, 4)``, ``(w, x, y, z)`` with ``w >= 0``.

    Uses the numerically stable four-branch method (largest diagonal pivot).
    """
    m = R.reshape(-1, 3, 3)
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    # Squared magnitudes of 4w, 4x, 4y, 4z (Shepperd's method); pick the largest for stability.
    cand = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    idx = cand.argmax(dim=-1)
    s = cand.gather(1, idx[:, None]).clamp_min(1e-12).sqrt()[:, 0] * 2  # s = 4 * |component|
    q_w = torch.stack([s / 4, (m[:, 2, 1] - m[:, 1, 2]) / s, (m[:, 0, 2] - m[:, 2, 0]) / s,
                       (m[:, 1, 0] - m[:, 0, 1]) / s], -1)
    q_x = torch.stack([(m[:, 2, 1] - m[:, 1, 2]) / s, s / 4, (m[:, 0, 1] + m[:, 1, 0]) / s,
                       (m[:, 0, 2] + m[:, 2, 0]) / s], -1)
    q_y = torch.stack([(m[:, 0, 2] - m[:, 2, 0]) / s, (m[:, 0, 1] + m[:, 1, 0]) / s, s / 4,
                       (m[:, 1, 2] + m[:, 2, 1]) / s], -1)
    q_z = torch.stack([(m[:, 1, 0] - m[:, 0, 1]) / s, (m[:, 0, 2] + m[:, 2, 0]) / s,
                       (m[:, 1, 2] + m[:, 2, 1]) / s, s / 4], -1)
    allq = torch.stack([q_w, q_x, q_y, q_z], dim=1)  # (B, 4 branches, 4)
    q = allq.gather(1, idx[:, None, None].expand(-1, 1, 4))[:, 0]
    q = q * torch.where(q[:, :1] < 0, -1.0, 1.0).to(q.dtype)
    q = q / q.norm(dim=-1, keepdim=True)
    return q.reshape(R.shape[:-2] + (4,))


@numpy_compatible
def axis_angle_to_rotation_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(*, 3)`` (radians) -> rotation matrix ``(*, 3, 3)`` by Rodrigues' formula."""
    theta = axis_angle.norm(dim=-1, keepdim=True)
    # Taylor-safe half-angle quaternion: q = (cos(θ/2), sin(θ/2)/θ · v)
    half = theta / 2
    small = theta < 1e-6
    k = torch.where(small, 0.5 - theta**2 / 48, torch.sin(half) / theta.clamp_min(1e-12))
    q = torch.cat([torch.cos(half), axis_angle * k], dim=-1)
    return quaternion_to_rotation_matrix(q)


@numpy_compatible
def rotation_matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``(*, 3, 3)`` -> axis-angle ``(*, 3)`` with angle in ``[0, π]`` radians."""
    q = rotation_matrix_to_quaternion(R)
    vec = q[..., 1:]
    sin_half = vec.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, q[..., :1])
    k = torch.where(sin_half < 1e-6, 2.0 / q[..., :1].clamp_min(1e-12), angle / sin_half.clamp_min(1e-12))
    return vec * k


@numpy_compatible
def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """6D representation ``(*, 6)`` -> rotation matrix ``(*, 3, 3)`` by Gram-Schmidt (Zhou et al. 2019).

    The first three numbers give column 0 (normalised), the next three column 1 after removing its
    component along column 0; column 2 is their cross product.
    """
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


@numpy_compatible
def rotation_6d_y_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """y-first 6D representation ``(*, 6)`` -> rotation matrix ``(*, 3, 3)`` (AG-Pose / CleanPose).

    ``d6[..., 3:]`` gives the y column (normalised), ``d6[..., :3]`` an approximate x direction:
    ``z = normalise(a × y)``, ``x = y × z``, ``R = [x y z]``. Unlike :func:`rotation_6d_to_matrix` the
    predicted y axis is kept exactly, so an error of the (symmetric) y axis never leaks into x.
    Source: Leeiieeo/AG-Pose ``utils/rotation_utils.py`` (``Ortho6d2Mat``; the normalisation floor there is
    1e-8, here 1e-12 as in ``F.normalize``).

    Convention: columns are the object's axes in the camera frame (``x_cam = R @ x_obj``).
    """
    a, b = d6[..., :3], d6[..., 3:]
    y = F.normalize(b, dim=-1)
    z = F.normalize(torch.cross(a, y, dim=-1), dim=-1)
    x = torch.cross(y, z, dim=-1)
    return torch.stack([x, y, z], dim=-1)


@numpy_compatible
def euler_xyz_to_rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Euler angles ``(*, 3)`` in radians (about x, y, z) -> ``Rx @ Ry @ Rz`` ``(*, 3, 3)``.

    The composition of AG-Pose's online rotation augmentation (Leeiieeo/AG-Pose ``utils/data_utils.py``,
    ``generate_augmentation``).
    """
    return (rotation_about_axis(angles[..., 0], "x") @ rotation_about_axis(angles[..., 1], "y")
            @ rotation_about_axis(angles[..., 2], "z"))


@numpy_compatible
def rotation_matrix_to_6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``(*, 3, 3)`` -> 6D representation ``(*, 6)`` (first two columns)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


@numpy_compatible
def orthonormalize(M: torch.Tensor) -> torch.Tensor:
    """Nearest rotation (det +1) to each matrix ``(*, 3, 3)`` in the Frobenius sense, by SVD."""
    U, _, Vh = torch.linalg.svd(M)
    d = torch.det(U @ Vh)
    D = torch.ones_like(M[..., 0])
    D[..., 2] = d
    return U @ (D[..., :, None] * Vh)


@numpy_compatible
def rotation_about_axis(angle: torch.Tensor, axis: str | int = "y") -> torch.Tensor:
    """Rotation matrices ``(*, 3, 3)`` about a coordinate axis for angles ``(*,)`` in radians."""
    i = {"x": 0, "y": 1, "z": 2}[axis] if isinstance(axis, str) else int(axis)
    angle = torch.as_tensor(angle)
    if not angle.is_floating_point():
        angle = angle.double()
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(c), torch.zeros_like(c)
    if i == 0:
        rows = [o, z, z, z, c, -s, z, s, c]
    elif i == 1:
        rows = [c, z, s, z, o, z, -s, z, c]
    else:
        rows = [c, -s, z, s, c, z, z, z, o]
    return torch.stack(rows, dim=-1).reshape(angle.shape + (3, 3))


def random_rotation(
    n: int | None = None, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Uniformly distributed random rotations: ``(3, 3)`` if ``n`` is None, else ``(n, 3, 3)``."""
    q = torch.randn((1 if n is None else n, 4), generator=generator, dtype=dtype)
    R = quaternion_to_rotation_matrix(q)
    return R[0] if n is None else R


@numpy_compatible
def rotation_angle_deg(R1: torch.Tensor, R2: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Geodesic angle between rotations, ``arccos((tr(R1 R2ᵀ) − 1) / 2)`` in degrees, shape ``(*)``.

    Args:
        R1, R2: ``(*, 3, 3)`` rotation matrices (broadcastable).
        clip: clamp the cosine into [-1, 1] (True). ``False`` reproduces the NOCS code, where rounding
            can give NaN.
    """
    cos = ((R1 * R2).sum(dim=(-1, -2)) - 1) / 2  # tr(R1 R2ᵀ) = Σ R1 ⊙ R2
    if clip:
        cos = cos.clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


@numpy_compatible
def y_axis_angle_deg(R1: torch.Tensor, R2: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Angle between the object y axes ``R1[:, 1]`` and ``R2[:, 1]`` in degrees, shape ``(*)``.

    The rotation error of a category with continuous symmetry about its y axis (NOCS protocol).
    """
    y1, y2 = R1[..., :, 1], R2[..., :, 1]
    cos = (y1 * y2).sum(-1) / (y1.norm(dim=-1) * y2.norm(dim=-1))
    if clip:
        cos = cos.clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


def rectify_vectors(
    green: torch.Tensor,
    red: torch.Tensor,
    green_conf: torch.Tensor,
    red_conf: torch.Tensor,
    y_symmetric: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Make the green (y) and red (x) vectors orthogonal, weighted by their confidences.

    With ``φ`` the angle between the unit vectors, both are rotated in their common plane toward
    (``φ > 90°``) or away from each other: green by ``c_r / (c_g + c_r) · (φ − π/2)``, red by
    ``c_g / (c_g + c_r) · (φ − π/2)``, so the gap closes exactly and the more confident vector moves
    less (GPV-Pose tools/rot_utils.py ``get_vertical_rot_vec``; the cosine is clamped to
    ±(1 − 1e-6) as in HS-Pose's batched version, and gradients flow through the angles). For
    ``y_symmetric`` rows ``c_r`` is 0: green is kept and red only orthogonalised
    (GPV-Pose tools/geom_utils.py ``generate_RT``).

    Args:
        green, red: ``(B, 3)`` vectors (normalised here).
        green_conf, red_conf: ``(B,)`` non-negative confidences.
        y_symmetric: ``(B,)`` bool, or None (no symmetric rows).

    Returns:
        ``(green', red')``, each ``(B, 3)`` unit, mutually orthogonal.
    """
    g = F.normalize(green, dim=-1)
    r = F.normalize(red, dim=-1)
    if y_symmetric is not None:
        red_conf = torch.where(y_symmetric.bool(), torch.zeros_like(red_conf), red_conf)
    cos = (g * r).sum(-1, keepdim=True).clamp(-1 + 1e-6, 1 - 1e-6)
    gap = torch.acos(cos) - math.pi / 2  # (B, 1)
    total = (green_conf + red_conf).clamp_min(1e-12).unsqueeze(-1)
    theta_g = red_conf.unsqueeze(-1) / total * gap
    theta_r = green_conf.unsqueeze(-1) / total * gap
    # In-plane unit directions: from g toward r and from r toward g (Rodrigues about g x r).
    g_to_r = F.normalize(r - cos * g, dim=-1)
    r_to_g = F.normalize(g - cos * r, dim=-1)
    g_new = torch.cos(theta_g) * g + torch.sin(theta_g) * g_to_r
    r_new = torch.cos(theta_r) * r + torch.sin(theta_r) * r_to_g
    return g_new, r_new


def rotation_from_vectors(y_axis: torch.Tensor, x_axis: torch.Tensor) -> torch.Tensor:
    """Rotation ``(B, 3, 3)`` with columns ``[x | y | z]`` from a y and an approximate x axis, y first.

    ``y = normalize(y)``, ``z = normalize(x × y)``, ``x = y × z`` (GPV-Pose ``get_rot_mat_y_first``).
    """
    y = F.normalize(y_axis, dim=-1)
    z = F.normalize(torch.cross(x_axis, y, dim=-1), dim=-1)
    x = torch.cross(y, z, dim=-1)
    return torch.stack((x, y, z), dim=-1)


def vectors_to_rotation(
    green: torch.Tensor,
    red: torch.Tensor,
    green_conf: torch.Tensor,
    red_conf: torch.Tensor,
    y_symmetric: torch.Tensor | None = None,
) -> torch.Tensor:
    """GPV-Pose rotation recovery: :func:`rectify_vectors` then :func:`rotation_from_vectors`.

    Shapes: ``(B, 3)``, ``(B, 3)``, ``(B,)``, ``(B,)``, ``(B,)`` -> ``(B, 3, 3)``.
    """
    g, r = rectify_vectors(green, red, green_conf, red_conf, y_symmetric)
    return rotation_from_vectors(g, r)
