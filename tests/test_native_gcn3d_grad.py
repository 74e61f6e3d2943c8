"""The 3D-GC training kernel (native/gcn3d_grad.c): values and gradients of the torch path, gradcheck in float64."""

import pytest
import torch
import torch.nn.functional as F

from demopose.layers import gcn3d
from demopose.layers.gcn3d import GraphConv, SurfaceConv
from demopose.native import gcn3d_grad

pytestmark = pytest.mark.skipif(not gcn3d_grad.available(), reason="no C compiler: the torch path runs instead")


def _inputs(B=2, N=24, k=5, S=3, C=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = F.normalize(torch.randn(B * N, k, 3, generator=g, dtype=dtype), dim=-1).requires_grad_()
    d = F.normalize(torch.randn(3, S * C, generator=g, dtype=dtype), dim=0).requires_grad_()
    support = torch.randn(B * N, S * C, generator=g, dtype=dtype).requires_grad_()
    index = (torch.randint(0, N, (B, N, k), generator=g) + torch.arange(B).view(B, 1, 1) * N).reshape(B * N, k)
    return u, d, support, index, N, S


def _torch_path(u, d, support, index, S, scale):
    R, k, _ = u.shape
    theta = torch.relu(u @ d)
    if support is not None:
        theta = theta * support.index_select(0, index.reshape(-1)).view(R, k, -1)
    return theta.amax(dim=1).view(R, S, -1).sum(dim=1) * scale


@pytest.mark.parametrize("graph", [True, False])
def test_gradcheck_float64(graph):
    u, d, support, index, N, S = _inputs()
    if graph:
        assert torch.autograd.gradcheck(lambda u, d, g: gcn3d_grad.aggregate(u, d, S, N, g, index, scale=0.5),
                                        (u, d, support))
    else:
        assert torch.autograd.gradcheck(lambda u, d: gcn3d_grad.aggregate(u, d, S, N, scale=1.0), (u, d))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_values_and_gradients_equal_the_torch_path(dtype):
    u, d, support, index, N, S = _inputs(B=3, N=40, k=8, S=4, C=6, dtype=dtype, seed=1)
    grad_out = torch.randn(u.shape[0], 6, dtype=dtype, generator=torch.Generator().manual_seed(2))
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    for sup in (support, None):
        ins = (u, d) + ((sup,) if sup is not None else ())
        got = gcn3d_grad.aggregate(u, d, S, N, sup, index if sup is not None else None, scale=0.25)
        want = _torch_path(u, d, sup, index, S, 0.25)
        torch.testing.assert_close(got, want, **tol)
        for a, b in zip(torch.autograd.grad(got, ins, grad_out), torch.autograd.grad(want, ins, grad_out)):
            torch.testing.assert_close(a, b, **tol)


def test_layers_train_through_the_kernel_like_the_torch_path(monkeypatch):
    """GraphConv and SurfaceConv with gradients: the same outputs and parameter gradients with the kernel and with
    the torch path (float64)."""
    torch.manual_seed(0)
    vertices = torch.randn(2, 64, 3, dtype=torch.float64)
    from demopose.layers.knn import knn_indices

    idx = knn_indices(vertices.float(), k=6, exclude_self=True)
    surface, graph = SurfaceConv(5, 3).double(), GraphConv(5, 7, 3).double()

    def run():
        for m in (surface, graph):
            m.zero_grad()
        out = graph(vertices, surface(vertices, idx), idx)
        out.pow(2).sum().backward()
        return out.detach(), [p.grad.clone() for m in (surface, graph) for p in m.parameters()]

    calls = []
    real = gcn3d_grad.aggregate
    monkeypatch.setattr(gcn3d.native_gcn3d_grad, "aggregate", lambda *a, **k: calls.append(1) or real(*a, **k))
    out_kernel, grads_kernel = run()
    assert len(calls) == 2  # both layers went through the kernel
    monkeypatch.setattr(gcn3d.native_gcn3d_grad, "usable", lambda *a: False)
    out_torch, grads_torch = run()
    torch.testing.assert_close(out_kernel, out_torch, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads_kernel, grads_torch):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
