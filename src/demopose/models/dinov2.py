"""DINOv2 ViT-S/14 image encoder in plain torch, loading the published checkpoint key layout.

Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024
(facebookresearch/dinov2; the ``dinov2_vits14_pretrain.pth`` file). CleanPose / AG-Pose use it frozen,
taking the pre-norm patch tokens (``x_prenorm`` without CLS) as a ``(B, 384, H/14, W/14)`` map
(notes/cleanpose.md §1.3).

Key layout (the published file, no prefix): ``cls_token (1, 1, D)``, ``pos_embed (1, 1 + 37*37, D)``,
``mask_token (1, D)``, ``patch_embed.proj.{weight, bias}`` (Conv2d 3 -> D, 14x14, stride 14),
``blocks.{i}.norm1``, ``blocks.{i}.attn.qkv`` (D -> 3D, bias), ``blocks.{i}.attn.proj``,
``blocks.{i}.ls1.gamma (D,)``, ``blocks.{i}.norm2``, ``blocks.{i}.mlp.fc1`` (D -> 4D), ``blocks.{i}.mlp.fc2``,
``blocks.{i}.ls2.gamma``, ``norm``. The blocks are :class:`demopose.layers.vit.ViTBlock` (LayerScale,
LayerNorm eps 1e-6). The position embedding is resized bicubically to the input's patch grid. Weights load
from a local file only (:func:`load_dinov2_checkpoint`); random init by default. Input: RGB in [0, 1],
ImageNet-normalised inside.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from demopose.layers.vit import ViTBlock

__all__ = ["DINOv2", "load_dinov2_checkpoint"]

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)


class DINOv2(nn.Module):
    """ViT with DINOv2's layout; defaults are ViT-S/14 (384 wide, 12 blocks, 6 heads, 518 px grid).

    Args:
        frozen: no gradients and always eval mode (CleanPose's setting).
        checkpoint: a local ``.pth`` in the published layout (None: random init).

    Shapes:
        ``rgb (B, 3, H, W)`` in [0, 1] (H, W multiples of the patch) -> ``(B, dim, H/14, W/14)``
        pre-norm patch tokens; ``out_channels = dim``.
    """

    def __init__(self, dim: int = 384, depth: int = 12, heads: int = 6, patch: int = 14, grid: int = 37,
                 mlp_ratio: float = 4.0, frozen: bool = True, checkpoint: str | Path | None = None) -> None:
        super().__init__()
        self.patch, self.out_channels = patch, dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + grid * grid, dim) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed = _PatchEmbed(patch, dim)
        self.blocks = nn.ModuleList(ViTBlock(dim, heads, mlp_ratio, qkv_bias=True, layer_scale=1e-5, eps=1e-6)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        if checkpoint:
            load_dinov2_checkpoint(self, checkpoint)
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> DINOv2:
        return super().train(mode and not getattr(self, "frozen", False))

    def _pos(self, h: int, w: int) -> torch.Tensor:
        n = self.pos_embed.shape[1] - 1
        g = int(round(n**0.5))
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        if (h, w) != (g, g):
            grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
            grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)
        return torch.cat([cls, grid], dim=1)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj((rgb - self.mean) / self.std)  # (B, D, h, w)
        B, D, h, w = x.shape
        x = torch.cat([self.cls_token.expand(B, -1, -1), x.flatten(2).transpose(1, 2)], dim=1)
        x = x + self._pos(h, w)
        for blk in self.blocks:
            x = blk(x)
        return x[:, 1:].transpose(1, 2).reshape(B, D, h, w)  # x_prenorm patch tokens


def load_dinov2_checkpoint(model: DINOv2, path: str | Path) -> None:
    """Strict-load a DINOv2 state dict from a local file (a bare state dict, or under ``model`` /
    ``state_dict`` / ``teacher``; a ``backbone.`` or ``module.`` prefix is stripped)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"DINOv2 checkpoint {p} does not exist")
    state = torch.load(p, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "teacher"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    for prefix in ("module.", "backbone."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{p}: not a DINOv2 state dict of this size ({e})") from None
