"""CleanPose's front door and distillation on fused per-point features, and their DeMo-Pose config flags."""

from __future__ import annotations

import io

import pytest
import torch

from demopose.models import build_model
from demopose.models.feature_adjust import AdjustedFusion, FeatureAdjust
from demopose.models.fusion import PointFusion

FD = dict(enabled=True, dim=16, dict_size=4, select_num=2, ffn=16, self_blocks=1, cross_blocks=1)
KD = dict(enabled=True, teacher="tiny", teacher_dim=16)


@pytest.mark.parametrize("tokens", ["global", "points"])
def test_front_door_starts_as_identity_learns_and_is_deterministic(tokens):
    torch.manual_seed(0)
    m = FeatureAdjust(24, 3, causal={**FD, "tokens": tokens}).train()
    feat, pts, cls = torch.randn(5, 32, 24), torch.randn(5, 32, 3), torch.tensor([0, 1, 2, 0, 1])
    out, extra = m(feat, cls, pts)
    assert torch.equal(out, feat) and not extra  # zero-initialised output projection
    out.pow(2).sum().backward()
    assert m.up.weight.grad.abs().sum() > 0
    assert m.front_door.dictionary.count.tolist() == [2, 2, 1]  # training enqueues
    with torch.no_grad():
        m.up.weight.normal_()
    m.eval()
    a, b = m(feat, cls, pts)[0], m(feat, cls, pts)[0]
    assert torch.equal(a, b) and not torch.equal(a, feat)
    if tokens == "global":  # one token: the same change for every point of an instance
        d = a - feat
        torch.testing.assert_close(d, d[:, :1].expand_as(d))


def test_distillation_branch_training_only_and_teacher_frozen():
    torch.manual_seed(0)
    m = FeatureAdjust(24, 3, distill=KD).train()
    feat = torch.randn(4, 32, 24, requires_grad=True)
    pts = torch.randn(4, 32, 3)
    out, extra = m(feat, torch.tensor([0, 1, 2, 0]), pts, torch.arange(4))
    assert out is feat and extra["kd_student"].shape == (4, 16) == extra["kd_teacher"].shape
    loss = m.loss(extra)["kd"]
    loss.backward()
    assert feat.grad.abs().sum() > 0 and all(p.grad is None for p in m.distill.teacher.parameters())
    assert m.distill.teacher_calls == 4 and set(m.distill.cache) == {0, 1, 2, 3}
    m.eval()
    assert m(feat, torch.tensor([0, 1, 2, 0]), pts)[1] == {}


def test_options_are_checked():
    with pytest.raises(ValueError, match="unknown option"):
        FeatureAdjust(8, 2, causal={"enabled": True, "dict_sise": 3})
    with pytest.raises(ValueError, match="tokens"):
        FeatureAdjust(8, 2, causal={"enabled": True, "tokens": "keypoints"})
    fusion = AdjustedFusion(PointFusion("concat", 8, 4), FeatureAdjust(12, 2, causal={**FD}))
    assert fusion.kind == "concat+adjust" and fusion.out_channels == 12
    with pytest.raises(RuntimeError, match="context"):
        fusion(torch.randn(1, 4, 8), torch.randn(1, 4, 4))


def _demopose(**kw):
    torch.manual_seed(0)
    return build_model("demopose_small", mono_args={"input_size": (64, 64)}, mesh_points=32, **kw)


def _batch(model, B=3, N=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"points": torch.randn(B, N, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 0.7]),
            "class_ids": torch.tensor([1, 2, 6]), "image": torch.randn(2, 3, 64, 64, generator=g),
            "image_index": torch.tensor([0, 1, 0]), "image_pixels": torch.rand(B, N, 2, generator=g) * 63,
            "instance_index": torch.tensor([5, 7, 9]), "R": torch.eye(3).expand(3, 3, 3).clone(),
            "t": torch.tensor([[0.0, 0.0, 0.7]] * 3), "size": torch.full((3, 3), 0.1),
            "size_residual": torch.zeros(3, 3), "mean_size": torch.full((3, 3), 0.1),
            "y_symmetric": torch.tensor([True, True, False]), "handle_visible": torch.ones(3, dtype=torch.bool),
            "model_points": torch.randn(3, 32, 3, generator=g) * 0.05}


def test_demopose_flags_plug_the_modules_into_the_fused_features():
    plain = _demopose()
    assert not isinstance(plain.pose.fusion, AdjustedFusion)
    m = _demopose(causal=FD, distill=KD)
    assert isinstance(m.pose.fusion, AdjustedFusion)
    b = _batch(m)
    m.train()
    pred = m(b)
    losses = m.loss(pred, b)
    assert {"kd", "mpl"} <= set(losses) and torch.isfinite(losses["kd"])
    sum(losses.values()).backward()
    assert m.pose.fusion.adjust.up.weight.grad.abs().sum() > 0
    assert m.pose.fusion.adjust.distill.proj.grad is not None
    assert set(m.pose.fusion.adjust.distill.cache) == {5, 7, 9}
    assert int(m.pose.fusion.adjust.front_door.dictionary.count.sum()) == 3
    # eval: deterministic, no KD, the dictionary survives a state-dict round trip
    m.eval()
    with torch.no_grad():
        m.pose.fusion.adjust.up.weight.normal_()
        # (GPV-Pose's random pooling takes a seeded generator; the front door has no randomness at eval)
        p1, p2 = m(b, torch.Generator().manual_seed(1)), m(b, torch.Generator().manual_seed(1))
    assert torch.equal(p1.R, p2.R) and "kd_student" not in p1.outputs
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = _demopose(causal=FD, distill=KD).eval()
    m2.load_state_dict(torch.load(buf))
    bank = m.pose.fusion.adjust.front_door.dictionary.bank
    assert torch.equal(m2.pose.fusion.adjust.front_door.dictionary.bank, bank)
    with torch.no_grad():
        assert torch.equal(m2(b, torch.Generator().manual_seed(1)).R, p1.R)
    with pytest.raises(ValueError, match="fusion"):
        _demopose(fusion=None, causal=FD)
