"""The fast GPV-Pose inference path equals the plain (unoptimised) formulation.

Pinned against a plain re-statement of the network written here from its layers: kNN by top-k for
every layer (the pooling computing its own), nearest pooled points by top-k, every level propagated
to all points and concatenated with the one-hot category, the pooled heads run as modules on the
concatenation (BatchNorm unfolded, ReLU before the max-pool).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bn_statistics import randomise_batchnorm
from demopose.geometry.rotation import rectify_vectors, rotation_from_vectors
from demopose.layers.gcn3d import RandomPool
from demopose.layers.knn import gather_points, knn_indices
from demopose.models import build_model
from demopose.models.gpv import GPVConfig, GPVPose, _bn_points
from demopose.models.gpv_fast import fold_linear_bn, pooled_heads_forward, pooled_heads_supported

SMALL = dict(widths=(16, 16, 32, 32, 64), head_point_channels=(64, 32), head_fc_channels=32,
             recon_block=(32, 16), recon_hidden=16, face_hidden=(32, 16))




def _batch(B: int, N: int, seed: int = 0, rgb: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {"points": torch.randn(B, N, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 0.8]),
           "class_ids": torch.arange(B).remainder(6).add(1)}
    if rgb:
        out["rgb_point_features"] = torch.randn(B, N, rgb, generator=g)
    return out


def plain_forward(model: GPVPose, batch: dict, seed: int) -> dict[str, torch.Tensor]:
    """The network as first written (no reuse, no folding, no splitting), from the model's layers."""
    bb, cfg = model.backbone, model.config
    gen = torch.Generator().manual_seed(seed)
    points, class_ids = batch["points"], batch["class_ids"]
    centroid = points.mean(dim=1, keepdim=True)
    v0 = points - centroid

    def knn(v: torch.Tensor, pooled: bool) -> torch.Tensor:
        n = v.shape[1]
        k = min(cfg.neighbor_num, n // 8) if pooled else min(cfg.neighbor_num, n - 1)
        return knn_indices(v, k=max(1, k), exclude_self=True)

    def nearest(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:  # top-2 by distance, keep the first
        return torch.topk(torch.cdist(q, r), 2, dim=-1, largest=False, sorted=True).indices[..., 0]

    def pool(v: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Max over the 4 nearest neighbours of every point, then the random subset (GPV Pool_layer)."""
        n = v.shape[1]
        pooled = gather_points(f, knn_indices(v, k=min(cfg.pool_neighbor_num, n - 1), exclude_self=True)).amax(2)
        keep = torch.randperm(n, generator=gen)[: int(n / cfg.pool_rate)]
        return v[:, keep], pooled[:, keep]

    idx0 = knn(v0, False)
    fm_0 = torch.relu(bb.conv_0(v0, idx0))
    fm_1 = torch.relu(_bn_points(bb.bn_1, bb.conv_1(v0, fm_0, idx0)))
    v1, fm_p1 = pool(v0, fm_1)
    idx1 = knn(v1, True)
    fm_2 = torch.relu(_bn_points(bb.bn_2, bb.conv_2(v1, fm_p1, idx1)))
    fm_3 = torch.relu(_bn_points(bb.bn_3, bb.conv_3(v1, fm_2, idx1)))
    v2, fm_p2 = pool(v1, fm_3)
    fm_4 = bb.conv_4(v2, fm_p2, knn(v2, True))
    n1, n2 = nearest(v0, v1), nearest(v0, v2)
    feat = torch.cat([fm_0, fm_1, gather_points(fm_2, n1), gather_points(fm_3, n1), gather_points(fm_4, n2)], -1)
    if model.fusion is not None:
        feat = model.fusion(feat, batch["rgb_point_features"])
    one_hot = nn.functional.one_hot(class_ids - 1, model.num_classes).float()
    x = torch.cat([feat, one_hot[:, None].expand(-1, feat.shape[1], -1)], dim=-1)
    g, r = model.rot_green(x), model.rot_red(x)
    ts = model.ts_head(torch.cat([x, v0], dim=-1))
    eps = cfg.vector_eps
    green = g[:, 1:] / (g[:, 1:].norm(dim=-1, keepdim=True) + eps)
    red = r[:, 1:] / (r[:, 1:].norm(dim=-1, keepdim=True) + eps)
    gc, rc = torch.sigmoid(g[:, 0]), torch.sigmoid(r[:, 0])
    sym = model.y_symmetric_table[class_ids]
    R = rotation_from_vectors(*rectify_vectors(green, red, gc, rc, sym))
    return {"R": R, "t": ts[:, :3] + centroid[:, 0], "size_residual": ts[:, 3:6], "green": green, "red": red,
            "green_conf": gc, "red_conf": rc}


def _compare(model: GPVPose, batch: dict, seed: int = 3, atol: float = 1e-5) -> None:
    model.eval()
    assert pooled_heads_supported(model)
    with torch.no_grad():
        fast = model(batch, generator=torch.Generator().manual_seed(seed))
        ref = plain_forward(model, batch, seed)
    got = {"R": fast.R, "t": fast.t, **{k: fast.outputs[k] for k in ref if k not in ("R", "t")}}
    for key, value in ref.items():
        assert torch.allclose(got[key], value, atol=atol, rtol=0), (key, float((got[key] - value).abs().max()))


@pytest.mark.parametrize("backbone", ["gcn", "hs"])
def test_fast_inference_matches_plain_formulation(backbone):
    torch.manual_seed(0)
    model = randomise_batchnorm(GPVPose(GPVConfig(backbone=backbone, **SMALL)))
    _compare(model, _batch(3, 300, seed=1))


def test_fast_inference_matches_plain_formulation_paper_sizes():
    """The full-size gpv (1286 -> 1024 heads) on one frame of 1028-point instances."""
    torch.manual_seed(0)
    model = randomise_batchnorm(build_model("gpv"))
    _compare(model, _batch(2, 1028, seed=2))


@pytest.mark.parametrize("rgb_norm", ["none", "layernorm"])
def test_fast_inference_with_concat_fusion(rgb_norm):
    torch.manual_seed(0)
    model = randomise_batchnorm(GPVPose(GPVConfig(fusion="concat", rgb_channels=8, rgb_norm=rgb_norm, **SMALL)))
    if model.fusion.rgb_norm is not None:  # a trained-looking norm, not the identity affine
        nn.init.normal_(model.fusion.rgb_norm.weight, 1.0, 0.3)
        nn.init.normal_(model.fusion.rgb_norm.bias, 0.0, 0.3)
    _compare(model, _batch(2, 200, seed=3, rgb=8))


def test_split_heads_equal_concat_heads_on_the_same_features():
    """The algebra alone: W [f_i; g(n(i)); onehot] = W_f f_i + (W_g g)(n(i)) + W_c[:, c], with BN folded."""
    torch.manual_seed(1)
    model = randomise_batchnorm(GPVPose(GPVConfig(**SMALL))).eval()
    batch = _batch(4, 256, seed=4)
    centred = batch["points"] - batch["points"].mean(1, keepdim=True)
    with torch.no_grad():
        lv = model.backbone.levels(centred)
        split = pooled_heads_forward(model, lv, batch["class_ids"], centred)
        one_hot = nn.functional.one_hot(batch["class_ids"] - 1, model.num_classes).float()
        x = torch.cat([lv.dense(), one_hot[:, None].expand(-1, 256, -1)], dim=-1)
        concat = [model.rot_green(x), model.rot_red(x), model.ts_head(torch.cat([x, centred], -1))]
    for a, b in zip(split, concat):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)


def test_fold_linear_bn_is_linear_then_bn():
    torch.manual_seed(2)
    lin, bn = nn.Linear(7, 5), randomise_batchnorm(nn.BatchNorm1d(5)).eval()
    w, b = fold_linear_bn(lin, bn)
    x = torch.randn(11, 7)
    assert torch.allclose(x @ w.t() + b, bn(lin(x)), atol=1e-6)


def test_folded_weights_follow_parameter_changes_and_state_dict_is_unchanged():
    torch.manual_seed(3)
    model = randomise_batchnorm(GPVPose(GPVConfig(**SMALL))).eval()
    keys = list(model.state_dict())
    batch = _batch(2, 128, seed=5)
    with torch.no_grad():
        model(batch, generator=torch.Generator().manual_seed(0))  # fills the cache
        other = randomise_batchnorm(GPVPose(GPVConfig(**SMALL)), seed=9)
        model.load_state_dict(other.state_dict())
    assert list(model.state_dict()) == keys  # nothing added (the cache is not state)
    _compare(model, batch)  # uses the new weights, not the cached fold
    with torch.no_grad():
        model.rot_green.point_mlp.norms[0].running_var.mul_(2.0)
    _compare(model, batch)


def test_gradients_through_fast_heads_match_plain():
    """Eval mode with autograd on: the folded weights are rebuilt in the graph, gradients agree."""
    torch.manual_seed(4)
    model = randomise_batchnorm(GPVPose(GPVConfig(**SMALL))).eval()
    batch = _batch(2, 128, seed=6)
    params = [model.rot_green.point_mlp.linears[0].weight, model.ts_head.point_mlp.norms[1].weight,
              model.backbone.conv_4.weight]
    out = model(batch, generator=torch.Generator().manual_seed(1))
    fast = torch.autograd.grad((out.R.sum() + out.t.sum() + out.size.sum()), params)
    ref = plain_forward(model, batch, 1)
    size = ref["size_residual"] + model.mean_sizes[batch["class_ids"]]
    plain = torch.autograd.grad((ref["R"].sum() + ref["t"].sum() + size.sum()), params)
    for a, b in zip(fast, plain):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_pool_reuses_a_wider_knn():
    torch.manual_seed(5)
    pool = RandomPool(4, 4)
    v, f = torch.randn(2, 64, 3), torch.randn(2, 64, 8)
    wide = knn_indices(v, k=10, exclude_self=True)
    a = pool(v, f, torch.Generator().manual_seed(2))
    b = pool(v, f, torch.Generator().manual_seed(2), neighbor_index=wide)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_training_mode_keeps_the_plain_path():
    model = GPVPose(GPVConfig(**SMALL)).train()
    assert not pooled_heads_supported(model)
    model.eval()
    assert pooled_heads_supported(model)
    model.fast_heads = False
    assert not pooled_heads_supported(model)


@pytest.mark.parametrize("fused", [False, True])
def test_graph_layers_fused_relu_product_matches_autograd_path(monkeypatch, fused):
    """Inference (no autograd) takes the fused product + ReLU where available; same values as with autograd."""
    import demopose.layers.gcn3d as gcn3d
    from demopose.layers.gcn3d import GraphConv, SurfaceConv

    monkeypatch.setattr(gcn3d, "FUSED_RELU_MM", fused and gcn3d.FUSED_RELU_MM)
    torch.manual_seed(7)
    conv, surf = GraphConv(8, 16, support_num=3), SurfaceConv(16, 3)
    v, f = torch.randn(2, 50, 3), torch.randn(2, 50, 8)
    idx = knn_indices(v, k=6, exclude_self=True)
    with torch.no_grad():
        a, b = conv(v, f, idx), surf(v, idx)
    assert torch.allclose(a, conv(v, f, idx), atol=1e-6) and torch.allclose(b, surf(v, idx), atol=1e-6)


def test_scratch_buffers_across_modes_and_sizes():
    """The CPU path reuses per-thread scratch buffers: inference mode, no_grad and growing sizes all work."""
    torch.manual_seed(8)
    model = randomise_batchnorm(GPVPose(GPVConfig(**SMALL))).eval()
    small, large = _batch(1, 100, seed=9), _batch(3, 300, seed=10)
    outs = []
    for ctx in (torch.inference_mode, torch.no_grad, torch.inference_mode):
        with ctx():
            outs.append([model(b, generator=torch.Generator().manual_seed(2)).t.clone() for b in (small, large)])
    for other in outs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(outs[0], other))
    _compare(model, large)


@pytest.mark.parametrize("fusion", [None, "concat", "concat+layernorm"])
def test_training_split_first_layers_match_the_concatenated_features(fusion):
    """Training runs every head's first per-point layer split by input rate (no concatenated features): the
    outputs and every parameter's gradient equal the plain formulation's (float64, same dropout and pooling)."""
    from demopose.models import build_model

    torch.manual_seed(0)
    kw = {"fusion": "concat", "rgb_channels": 8, "rgb_norm": "layernorm" if "+" in fusion else "none"} if fusion else {}
    model = build_model("gpv_small", **kw).train().double()
    points = (torch.randn(4, 200, 3) * 0.05 + torch.tensor([0.0, 0.0, 0.8])).double()
    batch = {"points": points, "class_ids": torch.tensor([1, 2, 5, 6])}
    if fusion:
        batch["rgb_point_features"] = torch.randn(4, 200, 8).double()
    results = []
    for split in (True, False):
        model.fast_heads = split
        model.zero_grad()
        torch.manual_seed(5)  # dropout
        pred = model(batch, generator=torch.Generator().manual_seed(3))
        total = pred.R.sum() + pred.t.sum() + pred.size.sum()
        (total + sum(v.sum() for v in pred.outputs.values() if v.is_floating_point())).backward()
        results.append((pred, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (a, grads_a), (b, grads_b) = results
    for key, value in a.outputs.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, b.outputs[key], rtol=1e-9, atol=1e-9, msg=key)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-7, atol=1e-8, msg=name)
