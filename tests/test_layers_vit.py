"""The shared ViT block: parameter names of the published layouts, shapes, options, failure path."""

from __future__ import annotations

import pytest
import torch

from demopose.layers.vit import ViTBlock


def test_dinov2_layout_keys_and_shape():
    blk = ViTBlock(48, 3, qkv_bias=True, layer_scale=1e-5, eps=1e-6)
    assert sorted(blk.state_dict()) == sorted([
        "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.qkv.weight", "attn.qkv.bias",
        "attn.proj.weight", "attn.proj.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
        "ls1.gamma", "ls2.gamma"])
    assert blk.mlp.fc1.out_features == 4 * 48 and blk.norm1.eps == 1e-6
    x = torch.randn(2, 5, 48, requires_grad=True)
    y = blk(x)
    assert y.shape == (2, 5, 48)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_pointbert_layout_has_no_qkv_bias_nor_layer_scale():
    blk = ViTBlock(32, 4, qkv_bias=False)
    keys = set(blk.state_dict())
    assert "attn.qkv.bias" not in keys and not any(k.startswith("ls") for k in keys)
    assert blk.norm1.eps == 1e-5


def test_layer_scale_scales_the_residual_branches():
    torch.manual_seed(0)
    blk = ViTBlock(16, 2, layer_scale=0.0)  # zero branches: the block is the identity
    x = torch.randn(3, 4, 16)
    assert torch.equal(blk(x), x)


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="not divisible by heads"):
        ViTBlock(30, 4)
