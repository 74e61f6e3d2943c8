"""Monocular detector: GhostNet key layout, neck/head shapes, losses, frozen feature map, overfitting."""

import math

import numpy as np
import pytest
import torch

from demopose.models import build_model
from demopose.models.assigners import ATSSAssigner, DynamicSoftLabelAssigner
from demopose.models.gfl_head import distribution_focal_loss, make_priors, quality_focal_loss
from demopose.models.ghostnet import GhostNet, load_pretrained

# GhostNet-1.0x as published (Han et al. 2020, Table 1): (kernel, expansion, out, SE, stride) per block
TABLE = [[(3, 16, 16, 0, 1)], [(3, 48, 24, 0, 2)], [(3, 72, 24, 0, 1)], [(5, 72, 40, 1, 2)], [(5, 120, 40, 1, 1)],
         [(3, 240, 80, 0, 2)],
         [(3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1), (3, 480, 112, 1, 1), (3, 672, 112, 1, 1)],
         [(5, 672, 160, 1, 2)],
         [(5, 960, 160, 0, 1), (5, 960, 160, 1, 1), (5, 960, 160, 0, 1), (5, 960, 160, 1, 1)]]
SE_REDUCED = {72: 20, 120: 32, 480: 120, 672: 168, 960: 240}  # SE width: expansion / 4 rounded to 4


def published_ghostnet_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A ghostnet_100 checkpoint in the Huawei / timm key layout, written independently of the model."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(name, cout, cin, k, bias=False):
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * 0.1
        if bias:
            sd[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.1

    def bn(name, c):
        sd[f"{name}.weight"] = torch.rand(c, generator=g) + 0.5
        sd[f"{name}.bias"] = torch.randn(c, generator=g) * 0.1
        sd[f"{name}.running_mean"] = torch.randn(c, generator=g) * 0.1
        sd[f"{name}.running_var"] = torch.rand(c, generator=g) + 0.5
        sd[f"{name}.num_batches_tracked"] = torch.tensor(1000)

    def ghost(p, cin, cout):
        init = math.ceil(cout / 2)
        conv(f"{p}.primary_conv.0", init, cin, 1)
        bn(f"{p}.primary_conv.1", init)
        conv(f"{p}.cheap_operation.0", init, 1, 3)
        bn(f"{p}.cheap_operation.1", init)

    conv("conv_stem", 16, 3, 3)
    bn("bn1", 16)
    cin = 16
    for i, stage in enumerate(TABLE):
        for j, (k, exp, out, se, s) in enumerate(stage):
            p = f"blocks.{i}.{j}"
            ghost(f"{p}.ghost1", cin, exp)
            if s > 1:
                conv(f"{p}.conv_dw", exp, 1, k)
                bn(f"{p}.bn_dw", exp)
            if se:
                conv(f"{p}.se.conv_reduce", SE_REDUCED[exp], exp, 1, bias=True)
                conv(f"{p}.se.conv_expand", exp, SE_REDUCED[exp], 1, bias=True)
            ghost(f"{p}.ghost2", exp, out)
            if cin != out or s > 1:
                conv(f"{p}.shortcut.0", cin, 1, k)
                bn(f"{p}.shortcut.1", cin)
                conv(f"{p}.shortcut.2", out, cin, 1)
                bn(f"{p}.shortcut.3", out)
            cin = out
    conv("blocks.9.0.conv", 960, 160, 1)
    bn("blocks.9.0.bn1", 960)
    conv("conv_head", 1280, 960, 1, bias=True)  # ImageNet classifier: dropped on load
    sd["classifier.weight"] = torch.randn(1000, 1280, generator=g)
    sd["classifier.bias"] = torch.zeros(1000)
    return sd


def test_ghostnet_loads_published_key_layout(tmp_path):
    sd = published_ghostnet_state_dict()
    trunk = {k: v for k, v in sd.items() if not k.startswith(("conv_head", "classifier"))}
    assert len(trunk) == 508  # the trunk tensor count of timm ghostnet_100 (notes §2.4)
    path = tmp_path / "ghostnet_1x.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)  # DataParallel-style file
    model = GhostNet(1.0)
    assert set(model.state_dict()) == set(trunk)  # no missing, no extra key
    load_pretrained(model, path)
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in trunk.items())
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(2.67e6, rel=0.01)
    assert model.out_channels == [40, 112, 960] and model.strides == [8, 16, 32]
    with pytest.raises(ValueError, match="shape mismatch"):
        load_pretrained(GhostNet(0.5), path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(model, tmp_path / "missing.pth")


@pytest.mark.parametrize("name,levels", [("mono", (8, 16, 32, 64)), ("mono_small", (8, 16, 32))])
def test_feature_and_head_shapes_per_level(name, levels):
    torch.manual_seed(0)
    m = build_model(name)
    x = torch.randn(1, 3, 128, 96)
    feats = m.feature_map(x)
    C = m.config.neck_channels
    assert [tuple(f.shape) for f in feats] == [(1, C, math.ceil(128 / s), math.ceil(96 / s)) for s in levels]
    out = m(dict(image=x))
    P = sum(math.ceil(128 / s) * math.ceil(96 / s) for s in levels)
    assert out.cls.shape == (1, P, 6) and out.reg.shape == (1, P, 32)
    assert out.kpt.shape == (1, P, 18) and out.size.shape == (1, P, 3) and out.priors.shape == (P, 2)
    assert out.level_sizes.tolist() == [math.ceil(128 / s) * math.ceil(96 / s) for s in levels]


def test_priors_follow_the_grid_sample_convention():
    pts, strides, counts = make_priors([(2, 3)], [8])
    assert counts == [6] and pts[0].tolist() == [3.5, 3.5] and pts[5].tolist() == [19.5, 11.5]
    assert (strides == 8).all()


def test_qfl_and_dfl_known_values():
    logit = torch.tensor([[0.0, 0.0]])
    # positive of class 1 with quality 1: only class 1 channel has target 1; sigma = 0.5 everywhere
    q = quality_focal_loss(logit, torch.tensor([1]), torch.tensor([1.0]))
    assert q.item() == pytest.approx(2 * math.log(2) * 0.25)
    d = distribution_focal_loss(torch.zeros(1, 8), torch.tensor([2.3]))
    assert d.item() == pytest.approx(math.log(8))  # uniform distribution: CE log 8 on both neighbours


def test_freeze_keeps_eval_mode_and_no_grads():
    m = build_model("mono_small").freeze()
    m.train()
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert all(not mod.training for mod in m.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m.feature_map(x)[0], m.feature_map(x)[0])


def _toy_batch(B=2, size=64):
    g = torch.Generator().manual_seed(0)
    img = torch.randn(B, 3, size, size, generator=g) * 0.2
    boxes = torch.tensor([[[8.0, 10, 40, 50]], [[20, 6, 56, 40]]])[:B]
    for b in range(B):
        x1, y1, x2, y2 = boxes[b, 0].int().tolist()
        img[b, :, y1:y2, x1:x2] += 1.5
    kp = torch.stack([torch.stack([boxes[:, 0, 0] + 3 * k, boxes[:, 0, 1] + 4 * k], -1) for k in range(9)], 1)
    return {"image": img, "gt_boxes": boxes, "gt_labels": torch.tensor([[2], [4]])[:B],
            "gt_keypoints": kp[:, None], "gt_rel_size": torch.tensor([[[0.4, 0.8, 0.44]]]).expand(B, 1, 3),
            "gt_valid": torch.ones(B, 1, dtype=torch.bool)}


@pytest.mark.parametrize("assigner", ["atss", "dsl"])
def test_loss_terms_decrease(assigner):
    torch.manual_seed(0)
    m = build_model("mono_small", assigner=assigner)
    batch = _toy_batch()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(20):
        losses = m.loss(m(batch), batch)
        if first is None:
            first = {k: float(v.detach()) for k, v in losses.items()}
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    last = {k: float(v.detach()) for k, v in m.loss(m(batch), batch).items()}
    assert set(first) == {"qfl", "dfl", "giou", "keypoints", "size"}
    assert sum(last.values()) < 0.5 * sum(first.values())
    assert last["keypoints"] < first["keypoints"] and last["qfl"] < first["qfl"]


def test_assigners_pick_priors_inside_the_box():
    priors, strides, counts = make_priors([(12, 12), (6, 6), (3, 3)], [8, 16, 32])
    box = torch.tensor([[20.0, 24, 60, 70]])
    res = ATSSAssigner().assign(priors=priors, strides=strides, num_level_priors=counts, gt_boxes=box,
                                gt_labels=torch.tensor([1]))
    pos = res.positive
    assert pos.any()
    inside = ((priors > box[0, :2]) & (priors < box[0, 2:])).all(1)
    assert (inside[pos]).all()
    P = len(priors)
    scores = torch.full((P, 3), 0.1)
    pred_boxes = torch.cat([priors - 20, priors + 20], 1)
    res2 = DynamicSoftLabelAssigner().assign(priors=priors, gt_boxes=box, gt_labels=torch.tensor([1]),
                                             pred_scores=scores, pred_boxes=pred_boxes)
    assert res2.positive.any() and inside[res2.positive].all()
    empty = ATSSAssigner().assign(priors=priors, strides=strides, num_level_priors=counts,
                                  gt_boxes=torch.zeros(0, 4), gt_labels=torch.zeros(0, dtype=torch.long))
    assert not empty.positive.any()


def test_detect_frame_and_predict_frame_run(tmp_path):
    from pathlib import Path

    from demopose.data.nocs import load_frame

    frame = load_frame(Path(__file__).parent / "fixtures/nocs_sample/Real/test/scene_1/0000", load_nocs=False)
    m = build_model("mono_small", input_size=(128, 96), score_threshold=0.0)
    det = m.detect_frame(frame)
    assert det.keypoints.shape == (len(det), 9, 2) and len(det) <= 100
    assert np.all(det.boxes[:, 2] <= frame.width) and np.all(np.isin(det.class_ids, range(1, 7)))
    ps = m.poses_from_detections(frame, det)
    assert len(ps) <= len(det) and np.all(np.isfinite(ps.t))


def test_feature_sampling_convention_matches_priors():
    """The shared point-pixel sampler (used by the fusion) reads each head prior's own cell."""
    from demopose.layers.feature_sampling import sample_feature_map
    from demopose.models.mono import frame_to_input_pixels

    feat = torch.arange(40.0).repeat(1, 1, 30, 1)  # (1, 1, 30, 40): value = column index, stride 8 of 320x240
    u = torch.tensor([[[3.5, 100.0], [11.5, 100.0], [315.5, 100.0], [7.5, 100.0]]])
    got = sample_feature_map(feat, u, (240, 320))[0, :, 0]
    assert torch.allclose(got, torch.tensor([0.0, 1.0, 39.0, 0.5]))
    priors, _, _ = make_priors([(30, 40)], [8])
    vals = sample_feature_map(feat, priors[None], (240, 320))[0, :, 0]
    assert torch.allclose(vals, priors[:, 0].sub(3.5).div(8))  # every prior reads its own cell
    # original 640x480 pixel centres map through the letterbox into 320x320 input
    assert torch.allclose(frame_to_input_pixels(torch.tensor([[0.0, 0.0], [639.0, 479.0]]), (640, 480), (320, 320)),
                          torch.tensor([[-0.25, -0.25], [319.25, 239.25]]))
