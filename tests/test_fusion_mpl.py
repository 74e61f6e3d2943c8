"""DeMo-Pose pieces: feature sampling convention, fusion variants, Mesh-Point Loss and its head."""

import math

import pytest
import torch

from demopose.geometry import random_rotation, rotation_about_axis
from demopose.layers.feature_sampling import sample_feature_map
from demopose.models import build_model
from demopose.models.fusion import FUSIONS, RGB_NORMS, PointFusion
from demopose.models.mesh_point_loss import mesh_point_loss


def test_sampling_hand_computed():
    # a 2x2 feature map over a 4x4 image (stride 2): cell (i, j) is centred at pixel (2j + 0.5, 2i + 0.5)
    f = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    px = torch.tensor([[[0.5, 0.5], [2.5, 0.5], [0.5, 2.5], [2.5, 2.5], [1.5, 0.5], [1.5, 1.5], [-0.5, -0.5],
                        [3.5, 1.5]]])
    out = sample_feature_map(f, px, (4, 4))[0, :, 0]
    # centres, a midpoint between two cells, the middle of all four, a clamped corner, the clamped right edge
    torch.testing.assert_close(out, torch.tensor([0.0, 1.0, 2.0, 3.0, 0.5, 1.5, 0.0, 2.0]))


def test_sampling_identity_at_stride_one():
    f = torch.randn(2, 5, 6, 8)
    v, u = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    px = torch.stack([u.flatten(), v.flatten()], -1)[None].expand(2, -1, -1)
    out = sample_feature_map(f, px, (6, 8))
    torch.testing.assert_close(out, f.flatten(2).transpose(1, 2))


@pytest.mark.parametrize("rgb_norm", RGB_NORMS)
@pytest.mark.parametrize("kind", FUSIONS)
def test_fusion_variants(kind, rgb_norm):
    fus = PointFusion(kind, geo_channels=16, rgb_channels=8, rgb_norm=rgb_norm)
    g, r = torch.randn(3, 20, 16, requires_grad=True), torch.randn(3, 20, 8, requires_grad=True)
    out = fus(g, r)
    assert out.shape == (3, 20, fus.out_channels)
    out.sum().backward()
    assert g.grad is not None and r.grad is not None
    if kind == "concat":
        assert fus.out_channels == 24 and torch.equal(out[..., :16], g)
        if rgb_norm == "layernorm":  # each point's RGB vector at zero mean, unit RMS over its channels
            rgb = out[..., 16:].detach()
            torch.testing.assert_close(rgb.mean(-1), torch.zeros(3, 20), atol=1e-5, rtol=0)
            torch.testing.assert_close(rgb.pow(2).mean(-1), torch.ones(3, 20), atol=1e-3, rtol=0)
        else:
            assert torch.equal(out[..., 16:], r)
        return
    # the other variants start as the identity on the geometric features, and the RGB path learns from there
    torch.testing.assert_close(out, g)
    opt = torch.optim.SGD(fus.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        (fus(g, r) * torch.randn(3, 20, 16)).sum().backward()
        opt.step()
    moved = fus(g.detach(), r.detach()) - fus(g.detach(), torch.zeros_like(r))
    assert moved.abs().max() > 1e-4, "the RGB features have no effect after two steps"


def test_unknown_rgb_norm_is_refused():
    with pytest.raises(ValueError, match="rgb_norm: expected one of"):
        PointFusion("concat", 16, 8, rgb_norm="batchnorm")


def test_mesh_point_loss_zero_and_symmetric_treatment():
    torch.manual_seed(0)
    # a y-symmetric point set: a ring of points around the y axis
    ang = torch.linspace(0, 2 * math.pi, 37)[:-1]
    ring = torch.stack([0.05 * torch.cos(ang), torch.zeros_like(ang), 0.05 * torch.sin(ang)], -1)[None]
    R = random_rotation(1, dtype=torch.float32)
    target = ring @ R.transpose(1, 2)
    assert mesh_point_loss(target, ring, R, torch.tensor([False])) < 1e-12
    # the same set under a rotation about y: point-wise L2 penalises it, the symmetric (Chamfer) form does not
    Ry = rotation_about_axis(torch.tensor(2 * math.pi / 36 * 5), "y").float()[None]
    R2 = R @ Ry
    assert mesh_point_loss(target, ring, R2, torch.tensor([False])) > 1e-4
    assert mesh_point_loss(target, ring, R2, torch.tensor([True])) < 1e-8  # float32 cdist rounding


def test_gpv_with_fusion_and_mpl_head_training_only():
    model = build_model("gpv_small", fusion="concat", rgb_channels=8, mesh_points=32)
    B, N = 4, 128
    batch = {"points": torch.randn(B, N, 3) * 0.05 + torch.tensor([0, 0, 0.7]),
             "class_ids": torch.tensor([1, 3, 5, 6]), "rgb_point_features": torch.randn(B, N, 8),
             "R": random_rotation(B, dtype=torch.float32), "t": torch.tensor([[0, 0, 0.7]]).expand(B, 3),
             "size": torch.full((B, 3), 0.1), "model_points": torch.randn(B, 32, 3) * 0.05}
    model.train()
    pred = model(batch)
    assert pred.outputs["mesh_points"].shape == (B, 32, 3)
    losses = model.loss(pred, batch)
    assert "mpl" in losses and "loss" not in losses and torch.isfinite(losses["mpl"])
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.mesh_head.parameters())
    # inference never runs the MPL head
    calls = []
    model.mesh_head.register_forward_hook(lambda *a: calls.append(1))
    model.eval()
    with torch.no_grad():
        out = model(batch)
    assert calls == [] and "mesh_points" not in out.outputs
    with pytest.raises(KeyError, match="rgb_point_features"):
        model({k: v for k, v in batch.items() if k != "rgb_point_features"})
