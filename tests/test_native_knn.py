"""The compiled exact kNN kernel (demopose.native.knn) against the torch exact path it must reproduce."""

from __future__ import annotations

import pytest
import torch

from demopose.layers import knn as knn_module
from demopose.layers.knn import exact_distances, knn_indices, nearest_indices
from demopose.native import knn as native_knn

pytestmark = pytest.mark.skipif(not native_knn.available(), reason="no C compiler: the torch path runs instead")


def _torch_exact(monkeypatch, fn):
    with monkeypatch.context() as m, exact_distances(True):
        m.setattr(native_knn, "usable", lambda *a: False)
        return fn()


def _grid_points(B: int, n: int, seed: int) -> torch.Tensor:
    """Points on a 1 cm grid (many exactly equidistant neighbours, like back-projected depth) and duplicates."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randint(0, 6, (B, n, 3), generator=g).float() * 0.01
    p[:, 1] = p[:, 0]
    return p


@pytest.mark.parametrize("C", [1, 2, 3])
@pytest.mark.parametrize("points", ["random", "grid"])
def test_same_neighbours_as_torch_exact(monkeypatch, C, points):
    torch.manual_seed(C)
    v = torch.randn(3, 200, C) if points == "random" else _grid_points(3, 200, C)[..., :C]
    for k, exclude in ((10, True), (4, True), (7, False), (1, False)):
        want = _torch_exact(monkeypatch, lambda k=k, e=exclude: knn_indices(v, k=k, exclude_self=e))
        assert torch.equal(native_knn.knn(v, v, k, exclude_self=exclude), want), (k, exclude)
        assert torch.equal(knn_indices(v, k=k, exclude_self=exclude), want)  # the default CPU path is the kernel
    w = v[:, ::3].contiguous()
    want = _torch_exact(monkeypatch, lambda: nearest_indices(v, w))
    assert torch.equal(nearest_indices(v, w), want)


def test_known_answer_ties_lower_index_first():
    # point 0 at the origin; points 1, 2, 3 all at distance 1 from it, point 4 at distance 0.5
    v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0, 0]]])
    got = native_knn.knn(v, v, 3, exclude_self=True)
    assert got[0, 0].tolist() == [4, 1, 2]
    assert native_knn.knn(v, v, 1)[0, :, 0].tolist() == [0, 1, 2, 3, 4]  # itself, when not excluded


def test_self_never_returned_even_among_infinite_distances():
    # distances from point 0 to points 1 and 2 overflow float32 to +inf: they tie with nothing excluded by index
    v = torch.tensor([[[0.0, 0, 0], [1e30, 0, 0], [2e30, 0, 0], [1, 0, 0]]])
    got = native_knn.knn(v, v, 3, exclude_self=True)
    for i in range(4):
        assert i not in got[0, i].tolist()
    assert got[0, 0].tolist() == [3, 1, 2]


def test_default_path_uses_the_kernel_and_false_forces_the_matmul_form(monkeypatch):
    calls = []
    real = native_knn.knn
    monkeypatch.setattr(native_knn, "knn", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    v = torch.randn(2, 64, 3)
    knn_indices(v, k=5, exclude_self=True)
    assert calls == [1]
    with exact_distances(False):
        knn_indices(v, k=5, exclude_self=True)
    knn_indices(v.double(), k=5, exclude_self=True)  # float64: torch
    knn_indices(torch.randn(2, 64, 8), k=5, exclude_self=True)  # feature space (C > 3): torch
    assert calls == [1]


def test_thread_count_does_not_change_results():
    v = torch.randn(2, 500, 3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native_knn.knn(v, v, 10, exclude_self=True)
        torch.set_num_threads(3)
        three = native_knn.knn(v, v, 10, exclude_self=True)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, three)


def test_bad_arguments():
    v = torch.randn(1, 8, 3)
    with pytest.raises(ValueError, match="k: expected 1 <= k <= 7"):
        native_knn.knn(v, v, 8, exclude_self=True)
    with pytest.raises(ValueError, match="C <= 3"):
        native_knn.knn(torch.randn(1, 8, 4), torch.randn(1, 8, 4), 2)
    with pytest.raises(ValueError, match="one set"):
        native_knn.knn(v, v[:, :5], 2, exclude_self=True)
    assert knn_module.native_knn is native_knn
