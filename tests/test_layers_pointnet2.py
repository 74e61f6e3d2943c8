"""PointNet++ operators against brute-force per-point references."""

from __future__ import annotations

import pytest
import torch

from demopose.layers.pointnet2 import (
    FeaturePropagation,
    PointNet2MSG,
    SetAbstractionMSG,
    ball_query,
    farthest_point_sample,
    group_points,
    three_interpolate,
)


def _ref_ball_query(xyz, centres, r, k):
    B, M = centres.shape[:2]
    out = torch.zeros(B, M, k, dtype=torch.long)
    for b in range(B):
        for m in range(M):
            found = [j for j in range(xyz.shape[1]) if ((xyz[b, j] - centres[b, m]) ** 2).sum() < r * r][:k]
            if not found:
                continue
            out[b, m] = torch.tensor(found + [found[0]] * (k - len(found)))
    return out


def test_ball_query_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    xyz = torch.rand(2, 200, 3, generator=g) * 0.2
    centres = torch.cat([xyz[:, :20], torch.full((2, 1, 3), 5.0)], dim=1)  # last centre: empty ball
    got = ball_query(xyz, centres, 0.04, 8)
    assert torch.equal(got, _ref_ball_query(xyz, centres, 0.04, 8))
    assert (got[:, -1] == 0).all()
    # a ball smaller than the nearest neighbour distance holds only the centre itself
    solo = ball_query(xyz, xyz[:, :5], 1e-6, 4)
    assert torch.equal(solo, torch.arange(5).view(1, 5, 1).expand(2, 5, 4))


def test_ball_query_rejects_bad_args():
    with pytest.raises(ValueError, match="radius"):
        ball_query(torch.zeros(1, 4, 3), torch.zeros(1, 2, 3), 0.0, 2)


def test_fps_is_farthest_first():
    g = torch.Generator().manual_seed(1)
    xyz = torch.rand(3, 100, 3, generator=g)
    idx = farthest_point_sample(xyz, 10)
    for b in range(3):
        chosen = [0]
        d = ((xyz[b] - xyz[b, 0]) ** 2).sum(-1)
        for _ in range(9):
            j = int(d.argmax())
            chosen.append(j)
            d = torch.minimum(d, ((xyz[b] - xyz[b, j]) ** 2).sum(-1))
        assert idx[b].tolist() == chosen


def test_group_points_relative_xyz_and_features():
    xyz = torch.arange(12.0).view(1, 4, 3)
    feats = torch.arange(8.0).view(1, 4, 2)
    idx = torch.tensor([[[1, 2], [3, 3]]])
    centres = xyz[:, [0, 1]]
    g = group_points(xyz, centres, idx, feats)
    assert g.shape == (1, 2, 2, 5)
    assert torch.equal(g[0, 0, 1, :3], xyz[0, 2] - xyz[0, 0])
    assert torch.equal(g[0, 1, 0, 3:], feats[0, 3])


def test_three_interpolate_matches_brute_force():
    g = torch.Generator().manual_seed(2)
    unknown, known = torch.rand(2, 30, 3, generator=g), torch.rand(2, 10, 3, generator=g)
    kf = torch.randn(2, 10, 5, generator=g)
    got = three_interpolate(unknown, known, kf)
    ref = torch.empty_like(got)
    for b in range(2):
        for n in range(30):
            d = (known[b] - unknown[b, n]).norm(dim=-1)
            order = d.argsort()[:3]
            w = 1 / (d[order] + 1e-8)
            ref[b, n] = (kf[b, order] * (w / w.sum())[:, None]).sum(0)
    torch.testing.assert_close(got, ref)
    # a known point interpolates to (almost exactly) its own feature
    torch.testing.assert_close(three_interpolate(known, known, kf), kf, atol=1e-5, rtol=0)


def test_set_abstraction_max_pools_the_grouped_mlp():
    torch.manual_seed(0)
    sa = SetAbstractionMSG(8, (0.3, 0.6), (4, 8), ((8, 16), (8, 12)), in_channels=2).eval()
    xyz, f = torch.rand(2, 40, 3), torch.randn(2, 40, 2)
    new_xyz, nf = sa(xyz, f)
    assert new_xyz.shape == (2, 8, 3) and nf.shape == (2, 8, 28)
    idx = ball_query(xyz, new_xyz, 0.3, 4)
    ref = sa.mlps[0](group_points(xyz, new_xyz, idx, f)).amax(2)
    torch.testing.assert_close(nf[..., :16], ref)
    # FP back to all points
    fp = FeaturePropagation(28 + 2, (16,)).eval()
    assert fp(xyz, new_xyz, f, nf).shape == (2, 40, 16)


def test_pointnet2_msg_shapes_and_gradient():
    torch.manual_seed(0)
    net = PointNet2MSG(npoints=(64, 32, 16, 8))
    xyz = (torch.rand(2, 128, 3) - 0.5) * 0.2
    xyz.requires_grad_(True)
    out = net(xyz)
    assert out.shape == (2, 128, 128) and net.out_channels == 128
    out.sum().backward()
    assert xyz.grad is not None and torch.isfinite(xyz.grad).all()
    # per-point features follow a permutation of the input (FPS start aside, the set is the same)
    net.eval()
    with torch.no_grad():
        a = net(xyz.detach())
    assert torch.isfinite(a).all()
