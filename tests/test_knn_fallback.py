"""Without the compiled kernel (no C compiler, ``DEMOPOSE_NATIVE=0``) the CPU torch path picks the kernel's
neighbours: difference-form distances, equal distances lower index first."""

from __future__ import annotations

import pytest
import torch

from demopose.layers.knn import knn_indices, nearest_indices
from demopose.native import knn as native_knn


def _grid(B: int, n: int, seed: int) -> torch.Tensor:
    """Points on a 1 cm grid with a duplicate: many exactly equidistant neighbours, like back-projected depth."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randint(0, 6, (B, n, 3), generator=g).float() * 0.01
    p[:, 1] = p[:, 0]
    return p


def test_fallback_breaks_ties_like_the_kernel(monkeypatch):
    x = torch.arange(12, dtype=torch.float32)
    pts = torch.stack([x, torch.zeros_like(x), torch.zeros_like(x)], -1)[None]
    monkeypatch.setattr(native_knn, "usable", lambda *a: False)
    idx = knn_indices(pts, k=2, exclude_self=True)
    assert idx[0, 5].tolist() == [4, 6] and idx[0, 0].tolist() == [1, 2]
    assert nearest_indices(pts, pts[:, [1, 3]])[0, 2].item() == 0


@pytest.mark.skipif(not native_knn.available(), reason="no C compiler: nothing to compare the fallback with")
@pytest.mark.parametrize("points", ["random", "grid"])
def test_fallback_same_neighbours_as_kernel(monkeypatch, points):
    torch.manual_seed(0)
    v = torch.randn(2, 300, 3) if points == "random" else _grid(2, 300, 1)
    kernel = [knn_indices(v, k=k, exclude_self=e) for k, e in ((16, True), (5, False), (1, False))]
    monkeypatch.setattr(native_knn, "usable", lambda *a: False)
    fallback = [knn_indices(v, k=k, exclude_self=e) for k, e in ((16, True), (5, False), (1, False))]
    for a, b in zip(kernel, fallback):
        assert torch.equal(a, b)
