"""Similarity alignment of corresponding point sets (Umeyama 1991), plain and RANSAC-robust.

Used to recover a pose from a NOCS coordinate map and depth (as the NOCS / SPD code does with
``align_nocs_to_depth``), and by tests as an independent oracle.
"""

from __future__ import annotations

import numpy as np
import torch

from demopose._checks import check_shape
from demopose.geometry._backend import numpy_compatible

__all__ = ["umeyama", "robust_umeyama"]


@numpy_compatible
def umeyama(src: torch.Tensor, dst: torch.Tensor, with_scale: bool = True,
            weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity ``dst ≈ s · R @ src + t`` (Umeyama, TPAMI 1991).

    Args:
        src, dst: ``(*, N, 3)`` corresponding points, N >= 3 and not collinear.
        with_scale: estimate ``s`` (True) or fix it to 1.
        weights: optional ``(*, N)`` non-negative point weights.

    Returns:
        ``s (*,)``, ``R (*, 3, 3)`` (det +1), ``t (*, 3)``.
    """
    check_shape(src, "* N 3", "src")
    check_shape(dst, "* N 3", "dst")
    w = torch.ones_like(src[..., 0]) if weights is None else weights.to(src.dtype)
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    mu_s = (w[..., None] * src).sum(-2)
    mu_d = (w[..., None] * dst).sum(-2)
    xs, xd = src - mu_s[..., None, :], dst - mu_d[..., None, :]
    cov = (w[..., None] * xd).transpose(-1, -2) @ xs  # Σ w d sᵀ, (*, 3, 3)
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.det(U) * torch.det(Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.ones_like(S)
    D[..., 2] = d
    R = U @ (D[..., :, None] * Vh)
    var_s = (w * (xs**2).sum(-1)).sum(-1)
    s = (S * D).sum(-1) / var_s.clamp_min(1e-12) if with_scale else torch.ones_like(var_s)
    t = mu_d - s[..., None] * (R @ mu_s[..., None])[..., 0]
    return s, R, t


def robust_umeyama(
    src: np.ndarray, dst: np.ndarray, threshold: float, iterations: int = 200,
    with_scale: bool = True, seed: int = 0,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """RANSAC over minimal 3-point Umeyama fits, then a refit on the best inlier set.

    Args:
        src, dst: ``(N, 3)`` corresponding points (float).
        threshold: inlier distance in the units of ``dst`` (metres for camera points).
        iterations: number of random minimal samples.
        with_scale: estimate the similarity scale.
        seed: RNG seed (deterministic result for a given seed).

    Returns:
        ``s``, ``R (3, 3)``, ``t (3,)`` and the inlier mask ``(N,)``.

    Raises:
        ValueError: fewer than 3 correspondences.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    dims = check_shape(src, "N 3", "src")
    check_shape(dst, "N 3", "dst", dims)
    n = src.shape[0]
    if n < 3:
        raise ValueError(f"robust_umeyama: need at least 3 correspondences, got {n}")
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.choice(n, 3, replace=False) for _ in range(iterations)])
    s, R, t = umeyama(src[idx], dst[idx], with_scale)  # batched over hypotheses
    pred = s[:, None, None] * np.einsum("hij,nj->hni", R, src) + t[:, None, :]
    err = np.linalg.norm(pred - dst[None], axis=-1)
    inl = err < threshold
    best = int(np.argmax(inl.sum(1)))
    inliers = inl[best]
    if inliers.sum() < 3:
        inliers = np.ones(n, dtype=bool)
    for _ in range(2):  # refit, then refresh the inlier set once
        s1, R1, t1 = umeyama(src[inliers], dst[inliers], with_scale)
        err = np.linalg.norm(s1 * src @ R1.T + t1 - dst, axis=-1)
        new = err < threshold
        if new.sum() >= 3:
            inliers = new
    return float(s1), R1, t1, inliers
