"""Exact (backend-independent) neighbour search: same neighbours as cdist on generic points, equal distances
taken lower index first, bit-stable squared distances."""

import torch

from demopose.layers.knn import exact_distances, knn_indices, squared_distances


def test_exact_mode_matches_cdist_on_generic_points():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(2, 300, 3, generator=g)
    fast = knn_indices(pts, k=10, exclude_self=True)
    with exact_distances():
        exact = knn_indices(pts, k=10, exclude_self=True)
    assert torch.equal(fast, exact)
    d = squared_distances(pts, pts[:, :7])
    assert torch.allclose(d, torch.cdist(pts, pts[:, :7]) ** 2, atol=1e-5)


def test_exact_mode_breaks_ties_by_lower_index():
    # a 1D grid: every interior point has two neighbours at exactly the same distance
    x = torch.arange(12, dtype=torch.float32)
    pts = torch.stack([x, torch.zeros_like(x), torch.zeros_like(x)], -1)[None]
    with exact_distances():
        idx = knn_indices(pts, k=2, exclude_self=True)
        near = knn_indices(pts, pts[:, [1, 3]], k=1)[..., 0]
    assert idx[0, 5].tolist() == [4, 6] and idx[0, 0].tolist() == [1, 2]
    assert near[0, 2].item() == 0  # points 1 and 3 are equidistant from 2: the lower index wins
    import demopose.layers.knn as knn

    assert knn._EXACT is None  # the context restores the default (exact only while exporting)
