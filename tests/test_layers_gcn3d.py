"""kNN, 3D-GC and HS-Pose layers: brute-force references, known answers, permutation behaviour."""

from __future__ import annotations

import pytest
import torch

from demopose.layers import (
    GraphConv,
    HSLayer,
    HSSurfaceLayer,
    RandomPool,
    SurfaceConv,
    gather_points,
    knn_indices,
    nearest_indices,
    upsample_nearest,
)
from demopose.models.gpv import GPVBackbone, GPVConfig


def _brute_knn(q: torch.Tensor, r: torch.Tensor, k: int, exclude_self: bool = False) -> torch.Tensor:
    d = ((q[:, :, None] - r[:, None]) ** 2).sum(-1)
    if exclude_self:
        d = d + torch.diag(torch.full((q.shape[1],), float("inf"))).unsqueeze(0)
    return d.argsort(dim=-1)[..., :k]


@pytest.mark.parametrize("chunk", [None, 7])
@pytest.mark.parametrize("C", [3, 16])
def test_knn_matches_brute_force(chunk, C):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 50, C, generator=g, dtype=torch.float64)
    r = torch.randn(2, 80, C, generator=g, dtype=torch.float64)
    assert torch.equal(knn_indices(q, r, k=5, chunk_size=chunk), _brute_knn(q, r, 5))
    assert torch.equal(knn_indices(q, k=6, exclude_self=True, chunk_size=chunk), _brute_knn(q, q, 6, True))
    assert torch.equal(nearest_indices(q, r), _brute_knn(q, r, 1)[..., 0])


def test_knn_self_excluded_even_with_duplicates():
    pts = torch.tensor([[[0.0, 0, 0], [0.0, 0, 0], [1.0, 0, 0]]])
    idx = knn_indices(pts, k=1, exclude_self=True)
    assert idx[0, :, 0].tolist() == [1, 0, 0]  # a duplicate is a neighbour, the point itself never


def test_knn_errors():
    x = torch.zeros(1, 5, 3)
    with pytest.raises(ValueError, match="k must be"):
        knn_indices(x, k=5, exclude_self=True)
    with pytest.raises(ValueError, match="ref"):
        knn_indices(x, torch.zeros(2, 5, 3), k=1)
    with pytest.raises(ValueError, match="exclude_self"):
        knn_indices(x, x, k=1, exclude_self=True)


def test_gather_points():
    x = torch.arange(2 * 5 * 2, dtype=torch.float32).view(2, 5, 2)
    idx = torch.tensor([[[0, 4]], [[3, 3]]])
    out = gather_points(x, idx)
    assert out.shape == (2, 1, 2, 2)
    assert torch.equal(out[1, 0, 0], x[1, 3]) and torch.equal(out[0, 0, 1], x[0, 4])


def test_surface_conv_known_answer():
    conv = SurfaceConv(kernel_num=1, support_num=2).double()
    with torch.no_grad():
        conv.directions.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))  # supports +x, +y
    v = torch.tensor([[[0.0, 0, 0], [2.0, 0, 0], [0.0, 0.5, 0], [0.0, 0, -1]]], dtype=torch.float64)
    idx = torch.tensor([[[1, 2, 3]]])  # neighbours of point 0 only
    out = conv(v, idx.expand(1, 4, 3).contiguous())
    # point 0: best neighbour along +x gives 1, along +y gives 1 -> sum 2
    assert out.shape == (1, 4, 1)
    assert torch.isclose(out[0, 0, 0], torch.tensor(2.0, dtype=torch.float64))
    conv.aggregate = "mean"
    assert torch.isclose(conv(v, idx.expand(1, 4, 3).contiguous())[0, 0, 0], torch.tensor(1.0, dtype=torch.float64))


def _naive_graph_conv(conv: GraphConv, v, f, idx):
    """Loop version of the 3D-GC graph convolution (zhihao-lin/3dgcn definition)."""
    B, N, k = idx.shape
    S, C = conv.support_num, conv.out_channels
    d = torch.nn.functional.normalize(conv.directions, dim=0).view(3, S, C)
    out = torch.zeros(B, N, C, dtype=v.dtype)
    lin = f @ conv.weight + conv.bias
    for b in range(B):
        for i in range(N):
            acc = torch.zeros(S, C, dtype=v.dtype)
            for s in range(S):
                vals = []
                for j in idx[b, i]:
                    u = torch.nn.functional.normalize(v[b, j] - v[b, i], dim=0)
                    theta = torch.relu(u @ d[:, s])  # (C,)
                    vals.append(theta * lin[b, j, C + s * C : C + (s + 1) * C])
                acc[s] = torch.stack(vals).amax(0)
            out[b, i] = lin[b, i, :C] + acc.sum(0)
    return out


def test_graph_conv_matches_naive_loop():
    torch.manual_seed(0)
    conv = GraphConv(4, 3, support_num=2).double()
    v = torch.randn(2, 6, 3, dtype=torch.float64)
    f = torch.randn(2, 6, 4, dtype=torch.float64)
    idx = knn_indices(v, k=3, exclude_self=True)
    assert torch.allclose(conv(v, f, idx), _naive_graph_conv(conv, v, f, idx), atol=1e-12)


@pytest.mark.parametrize("block_rows", [5, 10**9])
def test_block_size_does_not_change_results(monkeypatch, block_rows):
    """CPU blocks of points (cache-friendly) and one block (the GPU path) give the same output."""
    import demopose.layers.gcn3d as gcn3d

    torch.manual_seed(6)
    conv, surf = GraphConv(4, 3, support_num=2).double(), SurfaceConv(3, 2).double()
    v = torch.randn(2, 23, 3, dtype=torch.float64)
    f = torch.randn(2, 23, 4, dtype=torch.float64)
    idx = knn_indices(v, k=4, exclude_self=True)
    ref_conv, ref_surf = _naive_graph_conv(conv, v, f, idx), None
    monkeypatch.setattr(gcn3d, "CPU_BLOCK_ROWS", 10**9)
    ref_surf = surf(v, idx)
    monkeypatch.setattr(gcn3d, "CPU_BLOCK_ROWS", block_rows)
    assert torch.allclose(conv(v, f, idx), ref_conv, atol=1e-12)
    assert torch.allclose(surf(v, idx), ref_surf, atol=1e-12)


def test_graph_conv_gradcheck():
    torch.manual_seed(1)
    conv = GraphConv(3, 2, support_num=2).double()
    v = torch.randn(1, 8, 3, dtype=torch.float64)
    idx = knn_indices(v, k=3, exclude_self=True)
    f = torch.randn(1, 8, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: conv(v, x, idx), (f,))


@pytest.mark.parametrize("layer", ["surface", "graph", "hs_surface", "hs"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layers_permutation_equivariant(layer, dtype):
    torch.manual_seed(2)
    B, N = 2, 40
    v = torch.randn(B, N, 3, dtype=dtype)
    f = torch.randn(B, N, 8, dtype=dtype)
    mod = {
        "surface": SurfaceConv(8, 3),
        "graph": GraphConv(8, 6, 3),
        "hs_surface": HSSurfaceLayer(8, 3),
        "hs": HSLayer(8, 6, 3),
    }[layer].to(dtype)

    def run(v, f):
        idx = knn_indices(v, k=5, exclude_self=True)
        return mod(v, idx) if layer in ("surface", "hs_surface") else mod(v, f, idx)

    perm = torch.randperm(N)
    out = run(v, f)
    assert out.dtype == dtype and out.shape[:2] == (B, N)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert torch.allclose(run(v[:, perm], f[:, perm]), out[:, perm], atol=tol)


def test_hs_layer_uses_feature_space_neighbours():
    torch.manual_seed(3)
    layer = HSLayer(4, 5, 3).double()
    v = torch.randn(1, 30, 3, dtype=torch.float64)
    f = torch.randn(1, 30, 4, dtype=torch.float64)
    xyz_idx = knn_indices(v, k=4, exclude_self=True)
    feat_idx = knn_indices(f, k=4, exclude_self=True)
    expected = layer.orl(layer.conv(v, f, feat_idx), xyz_idx) + layer.ste(f)
    assert torch.allclose(layer(v, f, xyz_idx), expected)
    wrong = layer.orl(layer.conv(v, f, xyz_idx), xyz_idx) + layer.ste(f)
    assert not torch.allclose(layer(v, f, xyz_idx), wrong)


def test_random_pool_subset_and_max():
    torch.manual_seed(4)
    v = torch.randn(2, 41, 3)
    f = torch.randn(2, 41, 5)
    pool = RandomPool(rate=4, neighbor_num=4)
    vp, fp, keep = pool(v, f, generator=torch.Generator().manual_seed(0))
    assert vp.shape == (2, 10, 3) and fp.shape == (2, 10, 5) and keep.shape == (10,)
    assert torch.equal(vp, v[:, keep])
    nn_idx = _brute_knn(v, v, 4, exclude_self=True)
    expected = torch.stack([f[b][nn_idx[b]].amax(1) for b in range(2)])[:, keep]
    assert torch.equal(fp, expected)
    _, _, keep2 = pool(v, f, generator=torch.Generator().manual_seed(0))
    assert torch.equal(keep, keep2)


def test_upsample_nearest():
    src = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]]])
    feat = torch.tensor([[[1.0], [2.0]]])
    tgt = torch.tensor([[[0.1, 0, 0], [0.9, 0, 0], [0.4, 0, 0]]])
    assert upsample_nearest(tgt, src, feat)[0, :, 0].tolist() == [1.0, 2.0, 1.0]


@pytest.mark.parametrize("backbone", ["gcn", "hs"])
def test_backbone_permutation_behaviour(backbone):
    """Without random subsampling (rate 1) the backbone is permutation-equivariant per point and the
    global feature is invariant; with rate 4 the output shape is fixed and only the sampled subset
    depends on the order."""
    torch.manual_seed(5)
    cfg = GPVConfig.small(backbone=backbone, widths=(8, 8, 16, 16, 32), pool_rate=1)
    net = GPVBackbone(cfg).double().eval()
    v = torch.randn(2, 64, 3, dtype=torch.float64)
    perm = torch.randperm(64)
    with torch.no_grad():
        feat, glob = net(v)
        feat_p, glob_p = net(v[:, perm])
    assert feat.shape == (2, 64, sum(cfg.widths)) and glob.shape == (2, 32)
    if backbone == "gcn":
        assert torch.allclose(feat_p, feat[:, perm], atol=1e-9)
        assert torch.allclose(glob_p, glob, atol=1e-9)
    else:
        # HS-Pose finds neighbours in feature space; after the max-pooling several points share the
        # very same feature vector, and the kNN among exact ties depends on the input order. The
        # levels before the first pooling are exactly equivariant.
        c01 = cfg.widths[0] + cfg.widths[1]
        assert torch.allclose(feat_p[..., :c01], feat[:, perm, :c01], atol=1e-9)
    net4 = GPVBackbone(GPVConfig.small(backbone=backbone, widths=(8, 8, 16, 16, 32))).double().eval()
    with torch.no_grad():
        feat4, glob4 = net4(v, generator=torch.Generator().manual_seed(0))
    assert feat4.shape == (2, 64, 80) and torch.isfinite(feat4).all()
    with pytest.raises(ValueError, match="at least 64"):
        net4(torch.randn(1, 63, 3, dtype=torch.float64))
