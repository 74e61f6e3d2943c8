"""3D IoU: exact oriented-box IoU against known cases and Monte-Carlo volumes; legacy mode quirks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from demopose.evaluation import iou_3d, iou_3d_exact, iou_3d_nocs
from demopose.geometry import random_rotation, rotation_about_axis

I1 = np.eye(3)[None]
Z = np.zeros((1, 3))
S = np.array([[0.1, 0.2, 0.3]])


def test_exact_known_cases():
    assert iou_3d_exact(I1, Z, S, I1, Z, S)[0, 0] == pytest.approx(1.0, abs=1e-12)
    assert iou_3d_exact(I1, Z, S, I1, np.array([[0.5, 0, 0]]), S)[0, 0] == 0.0  # disjoint
    assert iou_3d_exact(I1, Z, S, I1, np.array([[0.1, 0, 0]]), S)[0, 0] == 0.0  # touching face
    # shifted by half its width: intersection 1/2, union 3/2
    assert iou_3d_exact(I1, Z, S, I1, np.array([[0.05, 0, 0]]), S)[0, 0] == pytest.approx(1 / 3, abs=1e-12)
    # a box inside another: volume ratio
    assert iou_3d_exact(I1, Z, S / 2, I1, Z, S)[0, 0] == pytest.approx(1 / 8, abs=1e-12)
    # a cube rotated 45° about z inside the same cube: octagon prism of area 2(√2 − 1)·a²
    cube = np.array([[0.2, 0.2, 0.2]])
    R45 = rotation_about_axis(np.array(np.pi / 4), "z")[None]
    inter = 2 * (np.sqrt(2) - 1)
    assert iou_3d_exact(R45, Z, cube, I1, Z, cube)[0, 0] == pytest.approx(inter / (2 - inter), abs=1e-9)


def _mc_iou(R1, t1, s1, R2, t2, s2, n, rng):
    """Monte-Carlo IoU: sample uniformly in box 1, count the fraction f inside box 2."""
    u = (rng.random((n, 3)) - 0.5) * s1
    p = u @ R1.T + t1
    q = (p - t2) @ R2
    f = np.mean(np.all(np.abs(q) <= s2 / 2, axis=1))
    v1, v2 = np.prod(s1), np.prod(s2)
    return f * v1 / (v1 + v2 - f * v1), f


def test_exact_matches_monte_carlo():
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    R = random_rotation(24, generator=gen).numpy()
    n = 200_000
    checked = 0
    for k in range(12):
        s1, s2 = rng.uniform(0.05, 0.3, 3), rng.uniform(0.05, 0.3, 3)
        t2 = rng.normal(0, 0.04, 3)
        exact = iou_3d_exact(R[2 * k][None], Z, s1[None], R[2 * k + 1][None], t2[None], s2[None])[0, 0]
        mc, f = _mc_iou(R[2 * k], np.zeros(3), s1, R[2 * k + 1], t2, s2, n, rng)
        sigma = np.sqrt(max(f * (1 - f), 1e-6) / n)  # binomial std of f; IoU is monotone in f with slope ≤ 1
        assert abs(exact - mc) < 5 * sigma + 1e-4, (k, exact, mc)
        checked += exact > 0.05
    assert checked >= 6  # most cases really overlap


def test_nocs_legacy_quirks():
    # identical boxes -> 1; the legacy IoU ignores a shift that leaves every corner's max/min coordinate
    # unchanged, e.g. a shift along an axis that is never the max/min coordinate of any corner
    assert iou_3d_nocs(I1, Z, S, I1, Z, S)[0, 0] == pytest.approx(1.0)
    t = np.array([[0.0, -0.3, 1.0]])
    shifted = iou_3d_nocs(I1, t, S, I1, t + [0.01, 0, 0], S)[0, 0]
    assert shifted == 1.0  # z is every corner's max coordinate, y every corner's min: x never matters
    assert iou_3d_exact(I1, t, S, I1, t + [0.01, 0, 0], S)[0, 0] == pytest.approx(0.09 / 0.11)
    t = np.array([[0.0, 0.0, 1.0]])
    assert iou_3d_nocs(I1, t, S, I1, t + [0.01, 0, 0], S)[0, 0] < 1.0  # here x is some corners' min


def test_symmetric_search_in_both_modes():
    s = np.array([[0.08, 0.15, 0.12]])
    t = np.array([[0.1, 0.0, 0.8]])
    R90 = rotation_about_axis(np.array(np.pi / 2), "y")[None]
    for mode in ("nocs", "exact"):
        plain = iou_3d(R90, t, s, I1, t, s, mode=mode)[0, 0]
        sym = iou_3d(R90, t, s, I1, t, s, symmetric=np.array([True]), mode=mode)[0, 0]
        assert plain < 0.9 and sym == pytest.approx(1.0, abs=1e-9)


def test_batched_nocs_equals_pairwise():
    rng = np.random.default_rng(1)
    gen = torch.Generator().manual_seed(1)
    M, G = 5, 4
    R1, R2 = random_rotation(M, generator=gen).numpy(), random_rotation(G, generator=gen).numpy()
    t1, t2 = rng.normal(0, 0.05, (M, 3)), rng.normal(0, 0.05, (G, 3))
    s1, s2 = rng.uniform(0.05, 0.2, (M, 3)), rng.uniform(0.05, 0.2, (G, 3))
    sym = rng.random((M, G)) < 0.5
    for mode in ("nocs", "exact"):
        full = iou_3d(R1, t1, s1, R2, t2, s2, symmetric=sym, mode=mode)
        for i in range(M):
            for j in range(G):
                one = iou_3d(R1[i:i + 1], t1[i:i + 1], s1[i:i + 1], R2[j:j + 1], t2[j:j + 1], s2[j:j + 1],
                             symmetric=sym[i:i + 1, j:j + 1], mode=mode)
                assert full[i, j] == pytest.approx(one[0, 0], abs=1e-12)
    assert iou_3d(R1[:0], t1[:0], s1[:0], R2, t2, s2).shape == (0, G)
    with pytest.raises(ValueError, match="mode"):
        iou_3d(R1, t1, s1, R2, t2, s2, mode="aabb")
