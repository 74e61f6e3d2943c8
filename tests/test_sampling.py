"""Surface sampling: Poisson-disk (Yuksel 2015 sample elimination), uniform, farthest point sampling."""

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from demopose.geometry.sampling import farthest_point_sample, poisson_disk_sample, sample_surface
from demopose.synth.meshes import make_object


def _nn(points: np.ndarray) -> np.ndarray:
    d, _ = cKDTree(points).query(points, k=2)
    return d[:, 1]


@pytest.fixture(scope="module")
def mug():
    return make_object("mug", np.random.default_rng(3)).mesh


def test_poisson_spread_beats_uniform(mug):
    n = 512
    pd = poisson_disk_sample(mug, n, rng=0)
    uni, _ = sample_surface(mug, n, rng=0)
    assert pd.shape == (n, 3)
    nn_pd, nn_uni = _nn(pd), _nn(uni)
    assert nn_pd.min() > 5 * nn_uni.min()
    assert nn_pd.min() / nn_pd.mean() > 0.6  # measured ~0.86-0.89; uniform gives ~0.03-0.08
    assert nn_uni.min() / nn_uni.mean() < 0.3
    # Poisson-disk radius near the ideal hexagonal packing distance sqrt(2 A / (sqrt(3) n))
    ideal = np.sqrt(2 * mug.area / (np.sqrt(3) * n))
    assert 0.5 * ideal < nn_pd.mean() < 1.2 * ideal


def test_poisson_on_surface(mug):
    pts, face = poisson_disk_sample(mug, 300, rng=1, return_index=True)
    closest = trimesh.triangles.closest_point(mug.triangles[face], pts)
    np.testing.assert_allclose(closest, pts, atol=1e-12)
    assert np.all((face >= 0) & (face < len(mug.faces)))


def test_poisson_sphere_known_answer():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.1)
    pts = poisson_disk_sample((sphere.vertices, sphere.faces), 400, rng=2)
    r = np.linalg.norm(pts, axis=1)
    inradius = np.min(np.abs(np.sum(sphere.face_normals * sphere.triangles[:, 0], axis=1)))  # nearest face plane
    assert np.all(r <= 0.1 + 1e-12) and np.all(r > inradius)
    # well spread: every octant gets about an eighth
    octant = (pts > 0).astype(int) @ np.array([1, 2, 4])
    counts = np.bincount(octant, minlength=8)
    assert counts.min() > 35 and counts.max() < 65


def test_poisson_deterministic(mug):
    a = poisson_disk_sample(mug, 128, rng=5)
    b = poisson_disk_sample(mug, 128, rng=np.random.default_rng(5))
    c = poisson_disk_sample(mug, 128, rng=6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_poisson_edge_cases(mug):
    assert poisson_disk_sample(mug, 1, rng=0).shape == (1, 3)
    assert poisson_disk_sample(mug, 50, rng=0, oversample=1).shape == (50, 3)
    with pytest.raises(ValueError, match="n"):
        poisson_disk_sample(mug, 0)
    with pytest.raises(ValueError, match="oversample"):
        poisson_disk_sample(mug, 10, oversample=0.5)
    with pytest.raises(ValueError, match="faces"):
        poisson_disk_sample((np.zeros((3, 3)), np.array([[0, 1, 5]])), 10)
    with pytest.raises(ValueError, match="zero surface area"):
        sample_surface((np.zeros((3, 3)), np.array([[0, 1, 2]])), 10)


def test_sample_surface_area_weighted():
    # two unit squares' worth of triangles: a big one (area 2) and a small one (area 0.5)
    v = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [5, 0, 0], [6, 0, 0], [5, 1, 0]], float)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    _, face = sample_surface((v, f), 20000, rng=0)
    assert np.mean(face == 0) == pytest.approx(0.8, abs=0.02)


def test_fps_known_answer():
    pts = np.array([[0, 0, 0], [1, 0, 0], [0.1, 0, 0], [0.5, 0, 0], [0.9, 0, 0]], float)
    np.testing.assert_array_equal(farthest_point_sample(pts, 3), [0, 1, 3])
    np.testing.assert_array_equal(farthest_point_sample(pts, 2, start=3), [3, 0])


def test_fps_numpy_matches_torch_and_spreads():
    rng = np.random.default_rng(0)
    pts = rng.random((500, 3))
    idx = farthest_point_sample(pts, 64)
    assert idx.dtype == np.int64 and len(np.unique(idx)) == 64
    t = farthest_point_sample(torch.from_numpy(pts), 64)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), idx)
    tb = farthest_point_sample(torch.from_numpy(np.stack([pts, pts[::-1].copy()])), 64)
    assert tb.shape == (2, 64)
    np.testing.assert_array_equal(tb[0].numpy(), idx)
    assert _nn(pts[idx]).min() > 3 * _nn(pts[rng.choice(500, 64, replace=False)]).min()
    with pytest.raises(ValueError, match="k"):
        farthest_point_sample(pts, 501)


def test_poisson_weight_limiting_on_single_layer_surface():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.1)
    nn = _nn(poisson_disk_sample(sphere, 256, rng=3, weight_limiting=True))
    assert nn.min() / nn.mean() > 0.6
