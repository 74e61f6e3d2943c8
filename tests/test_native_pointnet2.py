"""The compiled PointNet++ index kernels give the torch code's indices exactly."""

import pytest
import torch

from demopose.geometry import sampling
from demopose.layers import pointnet2
from demopose.native import pointnet2 as native

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler: the torch code runs instead")


@pytest.mark.parametrize(("B", "N", "k"), [(3, 700, 128), (1, 40, 40), (2, 9, 1)])
def test_farthest_point_sample_matches_torch(B, N, k):
    pts = torch.rand(B, N, 3, generator=torch.Generator().manual_seed(N)) * 0.2
    pts[:, 3] = pts[:, 2]  # a duplicate point: ties go to the first index in both
    for start in (0, N - 1):
        assert torch.equal(native.farthest_point_sample(pts, k, start), sampling.farthest_point_sample(pts, k, start))
    assert torch.equal(pointnet2.farthest_point_sample(pts, k), sampling.farthest_point_sample(pts, k))


@pytest.mark.parametrize(("radius", "nsample"), [(0.02, 16), (0.05, 32), (0.5, 8), (1e-6, 4), (0.1, 900)])
def test_ball_query_matches_torch(monkeypatch, radius, nsample):
    g = torch.Generator().manual_seed(7)
    pts = torch.rand(2, 600, 3, generator=g) * 0.2
    centres = torch.cat([pts[:, :50], torch.full((2, 3, 3), 5.0)], dim=1)  # the last 3 balls are empty
    got = native.ball_query(pts, centres, radius, nsample)
    monkeypatch.setattr(native, "usable", lambda *t: False)
    want = pointnet2.ball_query(pts, centres, radius, nsample)
    assert torch.equal(got, want)
    assert torch.equal(got[:, -3:], torch.zeros_like(got[:, -3:]))  # empty ball: every slot 0
