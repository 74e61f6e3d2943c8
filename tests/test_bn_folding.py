"""BatchNorm folding for inference (demopose.layers.bn_folding) and the detector's folded path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bn_statistics import randomise_batchnorm
from demopose.layers.bn_folding import fold_conv_bn, fold_conv_bn_weights
from demopose.models import build_model


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise, with a bias
        self.bn_b = nn.BatchNorm2d(8, affine=False)
        self.c = nn.Conv2d(8, 4, 1)
        self.bn_c = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn_a(self.a(x)))
        y = self.bn_b(self.b(y))
        z = self.c(y)
        return self.bn_c(z) + z.mean()  # c's output has two users: not folded


@pytest.mark.parametrize("channels_last", [False, True])
def test_fold_conv_bn_matches_eval_and_leaves_the_original(channels_last):
    torch.manual_seed(0)
    net = randomise_batchnorm(_Net()).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_conv_bn(net, channels_last=channels_last)
    norms = [m for m in folded.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 1  # bn_a and bn_b folded, bn_c kept
    x = torch.randn(2, 3, 16, 12)
    with torch.no_grad():
        xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        torch.testing.assert_close(folded(xin), net(x), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert not any(p.requires_grad for p in folded.parameters())


class _SharedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)) + self.conv(2 * x)  # the conv is called twice: folding it would change both


def test_a_conv_used_twice_is_not_folded():
    net = randomise_batchnorm(_SharedConv()).eval()
    folded = fold_conv_bn(net)
    x = torch.randn(1, 2, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x))
    assert any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


def test_fold_conv_bn_weights_known_answer():
    conv = nn.Conv2d(1, 1, 1, bias=True)
    bn = nn.BatchNorm2d(1).eval()
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(4.0 - bn.eps)  # sqrt(var + eps) = 2
        bn.weight.fill_(0.5)
        bn.bias.fill_(10.0)
    w, b = fold_conv_bn_weights(conv, bn)
    # y = 0.5 * (2x + 1 - 3) / 2 + 10 = 0.5x + 9.5
    assert w.item() == pytest.approx(0.5) and b.item() == pytest.approx(9.5)


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float32 rounding relative to the tensor's scale (activations grow to ~10^3 here)."""
    assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max()) + 1e-6


def test_detector_folded_path_matches_and_is_cached():
    torch.manual_seed(1)
    det = randomise_batchnorm(build_model("mono_small")).eval()
    W, H = det.config.input_size
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        plain_feats = det.feature_map(x)
        plain_out = det.head(plain_feats)
        dets, feats = det._detect(x)
        first = det._folded(x)
        assert det._folded(x) is first  # cached
    for a, b in zip(plain_feats, feats):
        assert b.is_contiguous()
        _close(b, a)
    with torch.no_grad():
        out = det._folded(x)[1](det.inference_feature_map(x))
    for k in plain_out:
        _close(out[k], plain_out[k])
    assert not any("_folded" in k for k in det.state_dict())
    # a weight change (here: new BatchNorm statistics) rebuilds the copy
    randomise_batchnorm(det, seed=5)
    with torch.no_grad():
        assert det._folded(x) is not first
        _close(det.inference_feature_map(x)[0], det.feature_map(x)[0])


def test_detector_training_and_gradients_use_the_modules():
    det = build_model("mono_small")
    x = torch.randn(1, 3, *det.config.input_size[::-1])
    assert det._folded(x) is None  # training mode
    det.eval()
    assert det._folded(x) is None  # gradients enabled
    with torch.no_grad():
        assert det._folded(x) is not None
