"""The pre-norm transformer block of a Vision Transformer (Dosovitskiy et al., ICLR 2021), with optional
LayerScale (Touvron et al., "Going deeper with Image Transformers", ICCV 2021).

``x = x + ls1 · attn(norm1(x))``, ``x = x + ls2 · mlp(norm2(x))``: multi-head self-attention with one fused
``qkv`` projection and ``proj``; MLP ``fc1`` (D -> hidden) -> GELU -> ``fc2``. Parameter names follow the
published ViT / DINOv2 / Point-BERT checkpoints (``norm1``, ``attn.qkv``, ``attn.proj``, ``ls1.gamma``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``, ``ls2.gamma``), so their weights load unchanged.

Shapes: ``(B, T, D)`` tokens in, ``(B, T, D)`` out (``D`` divisible by ``heads``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Attention", "LayerScale", "Mlp", "ViTBlock"]


class Attention(nn.Module):
    """Multi-head self-attention ``(B, T, D) -> (B, T, D)`` (scaled dot product, no mask, no dropout)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"Attention: dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (B, h, T, D/h)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, D))


class Mlp(nn.Module):
    """``fc1`` (D -> hidden) -> GELU -> ``fc2`` (hidden -> D), over the last dimension."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    """A learnt per-channel factor ``gamma (D,)`` (initialised to ``init``) on a residual branch."""

    def __init__(self, dim: int, init: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * x


class ViTBlock(nn.Module):
    """One pre-norm transformer block (module docstring).

    Args:
        dim: token width ``D``. heads: attention heads. mlp_ratio: MLP hidden width / ``D`` (4).
        qkv_bias: bias on the ``qkv`` projection (ViT, DINOv2: yes; Point-BERT: no).
        layer_scale: initial LayerScale factor (DINOv2: 1e-5), or None for none (ViT, Point-BERT).
        eps: LayerNorm epsilon (DINOv2: 1e-6; PyTorch's default 1e-5 elsewhere).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 layer_scale: float | None = None, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if layer_scale is None:
            self.ls1: nn.Module = nn.Identity()
            self.ls2: nn.Module = nn.Identity()
        else:
            self.ls1, self.ls2 = LayerScale(dim, layer_scale), LayerScale(dim, layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D) -> (B, T, D)``."""
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))
