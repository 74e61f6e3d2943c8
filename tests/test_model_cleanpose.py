"""CleanPose / AG-Pose model: forward/backward, determinism, checkpoints, frozen teacher, overfitting,
foreign checkpoint layouts (DINOv2, ULIP PointBERT)."""

from __future__ import annotations

import argparse
import io

import pytest
import torch

from demopose.geometry.rotation import random_rotation
from demopose.models import build_model
from demopose.models.dinov2 import DINOv2, load_dinov2_checkpoint
from demopose.models.pointbert import PointBERT, load_ulip_pointbert

TINY = dict(dim=32, num_kpts=16, pn2_npoints=(64, 16), pn2_radii=((0.02, 0.04), (0.05, 0.1)),
            pn2_nsamples=((8, 8), (8, 8)), pn2_sa_mlps=(((16,), (16,)), ((32,), (32,))),
            pn2_fp_mlps=((32,), (16,)), ffn=32, pe_hidden=(16, 32), head_hidden=64, nocs_bins=16,
            gafa_k=(8,), iakd_blocks=1, rgb_size=32, causal={"dict_size": 8, "select_num": 4},
            distill={"teacher_dim": 32})


def _box_batch(B: int = 4, N: int = 128, seed: int = 0, rgb: int = 32) -> dict[str, torch.Tensor]:
    """Points on the surfaces of random boxes with known poses (camera frame, ~0.6 m away)."""
    g = torch.Generator().manual_seed(seed)
    size = 0.06 + 0.1 * torch.rand(B, 3, generator=g)
    R = random_rotation(B, generator=g) if "generator" in random_rotation.__code__.co_varnames else random_rotation(B)
    t = torch.tensor([0.0, 0.0, 0.6]) + 0.05 * torch.randn(B, 3, generator=g)
    u = torch.rand(B, N, 3, generator=g) - 0.5
    axis = torch.randint(0, 3, (B, N), generator=g)
    u.scatter_(2, axis[..., None], torch.sign(torch.rand(B, N, 1, generator=g) - 0.5) * 0.5)
    pts = (u * size[:, None]) @ R.float().transpose(1, 2) + t[:, None]
    return {"points": pts, "class_ids": torch.tensor([3, 5, 3, 5] * (B // 4)), "R": R.float(), "t": t,
            "size": size, "rgb": torch.rand(B, 3, rgb, rgb, generator=g),
            "rgb_pixels": torch.rand(B, N, 2, generator=g) * (rgb - 1), "instance_index": torch.arange(B)}


@pytest.mark.parametrize("name", ["cleanpose_small", "agpose_small"])
def test_forward_backward_and_eval_determinism(name):
    torch.manual_seed(0)
    m = build_model(name, **TINY)
    assert m.rgb_size == 32
    b = _box_batch()
    pred = m(b)
    losses = m.loss(pred, b)
    expected = {"pose", "cd", "nocs", "div", "recon", "delta"} | ({"kd"} if name.startswith("clean") else set())
    assert set(losses) == expected
    sum(losses.values()).backward()
    assert m.point_encoder.sa[0].mlps[0].linears[0].weight.grad is not None
    m.eval()
    p1, p2 = m(b), m(b)
    assert torch.equal(p1.R, p2.R) and torch.equal(p1.t, p2.t) and torch.equal(p1.size, p2.size)
    assert p1.outputs["kpt_3d"].shape == (4, 16, 3) and "recon" not in p1.outputs


def test_checkpoint_round_trip_restores_dictionary():
    torch.manual_seed(0)
    m = build_model("cleanpose_small", **TINY)
    for s in range(3):
        m(_box_batch(seed=s))  # training forwards fill the FIFO dictionary
    assert int(m.front_door.dictionary.count.sum()) > 0
    m.eval()
    b = _box_batch(seed=9)
    ref = m(b)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = build_model("cleanpose_small", **TINY).eval()
    m2.load_state_dict(torch.load(buf))
    assert torch.equal(m2.front_door.dictionary.bank, m.front_door.dictionary.bank)
    assert torch.equal(m2(b).R, ref.R)


def test_teacher_frozen_eval_and_student_gets_gradients():
    torch.manual_seed(0)
    m = build_model("cleanpose_small", **TINY)
    teacher = m.distill.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    m.train()
    assert not teacher.training and not teacher.encoder.training
    b = _box_batch()
    losses = m.loss(m(b), b)
    opt.zero_grad()
    losses["kd"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert m.distill.proj.grad is not None and m.distill.w1.weight.grad is not None
    assert m.point_encoder.sa[0].mlps[0].linears[0].weight.grad.abs().sum() > 0
    opt.step()
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k  # incl. BatchNorm running statistics
    # the cache serves the second epoch
    m.distill.use_cache = True
    m(b)
    assert set(m.distill.cache) == {0, 1, 2, 3}


def test_overfit_smoke_large_loss_drop():
    torch.manual_seed(0)
    m = build_model("agpose_small", **{**TINY, "online_aug": False})
    b = _box_batch(B=4, N=64, seed=1)
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    first = None
    for _ in range(30):
        losses = m.loss(m(b), b)
        total = sum(losses.values())
        first = float(total.detach()) if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert float(total.detach()) < 0.5 * first, (first, float(total.detach()))


def _dinov2_published_state(dim: int, depth: int, grid: int, patch: int = 14) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)

    def r(*s):
        return torch.randn(*s, generator=g) * 0.02

    sd = {"cls_token": r(1, 1, dim), "pos_embed": r(1, 1 + grid * grid, dim), "mask_token": r(1, dim),
          "patch_embed.proj.weight": r(dim, 3, patch, patch), "patch_embed.proj.bias": r(dim),
          "norm.weight": 1 + r(dim), "norm.bias": r(dim)}
    for i in range(depth):
        p = f"blocks.{i}."
        sd.update({p + "norm1.weight": 1 + r(dim), p + "norm1.bias": r(dim), p + "attn.qkv.weight": r(3 * dim, dim),
                   p + "attn.qkv.bias": r(3 * dim), p + "attn.proj.weight": r(dim, dim), p + "attn.proj.bias": r(dim),
                   p + "ls1.gamma": r(dim), p + "norm2.weight": 1 + r(dim), p + "norm2.bias": r(dim),
                   p + "mlp.fc1.weight": r(4 * dim, dim), p + "mlp.fc1.bias": r(4 * dim),
                   p + "mlp.fc2.weight": r(dim, 4 * dim), p + "mlp.fc2.bias": r(dim), p + "ls2.gamma": r(dim)})
    return sd


def test_dinov2_loads_published_key_layout(tmp_path):
    sd = _dinov2_published_state(dim=48, depth=2, grid=4)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(sd, path)
    m = DINOv2(dim=48, depth=2, heads=3, grid=4, checkpoint=path)
    assert torch.equal(m.blocks[1].ls2.gamma, sd["blocks.1.ls2.gamma"])
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    m.train()
    assert not m.training
    out = m(torch.rand(2, 3, 84, 84))
    assert out.shape == (2, 48, 6, 6)  # position embedding resized 4x4 -> 6x6
    with pytest.raises(ValueError, match="DINOv2"):
        load_dinov2_checkpoint(DINOv2(dim=48, depth=3, heads=3, grid=4), path)
    with pytest.raises(FileNotFoundError):
        load_dinov2_checkpoint(m, tmp_path / "missing.pth")


def test_dinov2_full_size_matches_published_shapes():
    m = DINOv2()
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes["pos_embed"] == (1, 1370, 384) and shapes["blocks.11.attn.qkv.weight"] == (1152, 384)
    assert sum(p.numel() for p in m.parameters()) == pytest.approx(22.06e6, rel=0.01)


def _ulip_state(width: int, depth: int, enc: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)

    def r(*s):
        return torch.randn(*s, generator=g) * 0.05

    p = "module.point_encoder."
    sd = {p + "cls_token": r(1, 1, width), p + "cls_pos": r(1, 1, width),
          p + "encoder.first_conv.0.weight": r(128, 3, 1), p + "encoder.first_conv.0.bias": r(128),
          p + "encoder.first_conv.3.weight": r(256, 128, 1), p + "encoder.first_conv.3.bias": r(256),
          p + "encoder.second_conv.0.weight": r(512, 512, 1), p + "encoder.second_conv.0.bias": r(512),
          p + "encoder.second_conv.3.weight": r(enc, 512, 1), p + "encoder.second_conv.3.bias": r(enc),
          p + "reduce_dim.weight": r(width, enc), p + "reduce_dim.bias": r(width),
          p + "pos_embed.0.weight": r(128, 3), p + "pos_embed.0.bias": r(128),
          p + "pos_embed.2.weight": r(width, 128), p + "pos_embed.2.bias": r(width),
          p + "norm.weight": 1 + r(width), p + "norm.bias": r(width),
          "module.pc_projection": r(2 * width, 512), "module.visual.cls_token": r(1, 1, 8), "module.logit_scale": r(1)}
    for bn, c in (("first_conv.1", 128), ("second_conv.1", 512)):
        sd.update({f"{p}encoder.{bn}.weight": 1 + r(c), f"{p}encoder.{bn}.bias": r(c),
                   f"{p}encoder.{bn}.running_mean": r(c), f"{p}encoder.{bn}.running_var": 1 + r(c).abs(),
                   f"{p}encoder.{bn}.num_batches_tracked": torch.tensor(7)})
    for i in range(depth):
        q = f"{p}blocks.blocks.{i}."
        sd.update({q + "norm1.weight": 1 + r(width), q + "norm1.bias": r(width),
                   q + "attn.qkv.weight": r(3 * width, width),
                   q + "attn.proj.weight": r(width, width), q + "attn.proj.bias": r(width),
                   q + "norm2.weight": 1 + r(width), q + "norm2.bias": r(width),
                   q + "mlp.fc1.weight": r(4 * width, width), q + "mlp.fc1.bias": r(4 * width),
                   q + "mlp.fc2.weight": r(width, 4 * width), q + "mlp.fc2.bias": r(width)})
    return sd


def test_pointbert_loads_ulip_checkpoint(tmp_path):
    sd = _ulip_state(width=48, depth=2, enc=64)
    path = tmp_path / "pointbert_ULIP-2.pt"
    torch.save({"state_dict": sd, "epoch": 3, "args": argparse.Namespace(model="ULIP_PointBERT")}, path)
    m = PointBERT(width=48, depth=2, heads=3, num_group=16, group_size=8, encoder_dims=64)
    load_ulip_pointbert(m, path)
    assert torch.equal(m.blocks.blocks[1].attn.qkv.weight, sd["module.point_encoder.blocks.blocks.1.attn.qkv.weight"])
    pre = "module.point_encoder."
    assert torch.equal(m.encoder.second_conv[1].running_mean, sd[pre + "encoder.second_conv.1.running_mean"])
    m.eval()
    assert m(torch.rand(2, 64, 3)).shape == (2, 96)
    with pytest.raises(ValueError, match="do not fit"):
        load_ulip_pointbert(PointBERT(width=48, depth=3, heads=3, encoder_dims=64), path)
    with pytest.raises(ValueError, match="no keys"):
        load_ulip_pointbert(m, path, prefix="module.nothing.")


def test_agpose_class_names_are_deprecated_aliases():
    import demopose.models as models
    from demopose.models.cleanpose import CleanPose, CleanPoseConfig

    with pytest.warns(DeprecationWarning, match="use demopose.models.CleanPose"):
        assert models.AGPose is CleanPose
    with pytest.warns(DeprecationWarning, match="CleanPoseConfig"):
        assert models.AGPoseConfig is CleanPoseConfig
    with pytest.raises(AttributeError):
        models.NoSuchModel  # noqa: B018


def _lin(a: int, b: int) -> int:
    return a * b + b


def _bn(c: int) -> int:
    return 2 * c


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_default_mlp_layout_is_agpose_upstream():
    """The default network has the MLPs of Leeiieeo/AG-Pose model/Net_modules.py: parameter counts of the
    GAFA block, NOCS predictor MLPs, reconstructor and pose/size estimator as upstream (d = 256, 512 hidden,
    6 classes, 64 bins, 10 offsets), BatchNorm only in GAFA's fc_in / fuse_mlp and the NOCS predictor's
    nocs_mlp, and a ReLU after the pose estimator's point encoders."""
    m = build_model("agpose", rgb_encoder="none")
    assert m.config.mlp_layout == "upstream"
    d, h = 256, 512
    pe = _lin(3, 64) + _lin(64, d) + _lin(d, d)
    gafa = (_lin(d, d) + _bn(d) + _lin(d, d)  # fc_in
            + pe + _lin(2 * d, d) + _lin(d, d) + 2 * pe  # fc_delta, fc_delta_1, fc_delta_l, fc_delta_abs
            + _lin(3 * d, d) + _bn(d) + _lin(d, d) + _bn(d)  # fuse_mlp
            + _lin(d, d) + _lin(d, d))  # out_mlp
    assert [_params(b) for b in m.gafa] == [gafa, gafa]
    nocs_mlp = _lin(d, h) + _bn(h) + _lin(h, h) + _bn(h) + _lin(h, d) + _bn(d)
    assert _params(m.nocs_head.pre) == nocs_mlp
    assert _params(m.nocs_head.post) == _lin(d, h) + _lin(h, h) + _lin(h, 6 * 3 * 64)
    recon = _lin(3, 64) + _lin(64, 128) + _lin(128, d) + 2 * _lin(d, d) + _lin(2 * d, h) + _lin(h, h) + _lin(h, 30)
    assert _params(m.reconstructor) == recon
    pose = (2 * (_lin(3, 32) + _lin(32, 64)) + _lin(64 + 64 + d, h) + _lin(h, d) + 2 * _lin(h, h)
            + sum(_lin(h, h) + _lin(h, d) + _lin(d, o) for o in (6, 3, 3)))
    assert _params(m.pose_head) == pose
    heads = (m.gafa, m.nocs_head, m.reconstructor, m.pose_head)
    n_bn = sum(isinstance(x, torch.nn.BatchNorm1d) for part in heads for x in part.modules())
    assert n_bn == 2 * 3 + 3
    enc = m.pose_head.kpt_enc(torch.randn(5, 3))
    assert (enc >= 0).all()  # ReLU after the last layer, as upstream


def test_batchnorm_layout_is_the_version_1_network():
    """mlp_layout=batchnorm rebuilds the network of version-1 checkpoints: same parameter names and shapes
    as the cleanpose_synth_small.pt shipped until 2026-12-06 (recorded in tests/fixtures), BatchNorm in every MLP."""
    import json
    from pathlib import Path

    record = Path(__file__).resolve().parent / "fixtures" / "cleanpose_v1_state_shapes.json"
    shipped = {k: tuple(v) for k, v in json.loads(record.read_text())["state_shapes"].items()}
    bn = build_model("cleanpose_small", mlp_layout="batchnorm", causal={"enabled": False},
                     distill={"enabled": False})
    assert {k: tuple(v.shape) for k, v in bn.state_dict().items()} == shipped
    up = build_model("cleanpose_small", causal={"enabled": False}, distill={"enabled": False})
    assert set(up.state_dict()) != set(shipped)
    count = [sum(isinstance(x, torch.nn.BatchNorm1d) for x in mm.reconstructor.modules()) for mm in (bn, up)]
    assert count == [5, 0]  # BN between the layers of pe (3 layers), feat (2) and dec (3)
    with pytest.raises(ValueError, match="mlp_layout: expected one of"):
        build_model("agpose_small", mlp_layout="layernorm")


@pytest.mark.parametrize("layout", ["upstream", "batchnorm"])
def test_both_layouts_train(layout):
    torch.manual_seed(0)
    m = build_model("agpose_small", **{**TINY, "mlp_layout": layout})
    b = _box_batch()
    losses = m.loss(m(b), b)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is not None for p in m.reconstructor.parameters())
