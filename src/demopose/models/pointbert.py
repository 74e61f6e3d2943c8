"""Point-BERT transformer point encoder (the ULIP-2 teacher of CleanPose), loading ULIP checkpoints.

Yu et al., "Point-BERT: Pre-training 3D Point Cloud Transformers with Masked Point Modeling", CVPR 2022;
Xue et al., "ULIP-2", CVPR 2024 (salesforce/ULIP ``models/pointbert/point_encoder.py``;
notes/cleanpose.md §3.1, §3.5). Layout (key names under ``point_encoder.``):

- grouping: ``num_group`` FPS centres, ``group_size`` nearest neighbours each, coordinates relative
  to the centre;
- ``encoder.first_conv.{0,1,3}`` (Conv1d 3->128, BN, ReLU, Conv1d 128->256), max-pool, concatenate the
  pooled and per-point features, ``encoder.second_conv.{0,1,3}`` (Conv1d 512->512, BN, ReLU, Conv1d
  512->``encoder_dims``), max-pool: one token per group;
- ``reduce_dim`` (encoder_dims -> width), ``cls_token``, ``cls_pos`` ``(1, 1, width)``,
  ``pos_embed.{0,2}`` (Linear 3->128, GELU, Linear 128->width) of the centres;
- ``blocks.blocks.{i}``: pre-LN blocks (``norm1``, ``attn.qkv`` without bias, ``attn.proj``, ``norm2``,
  ``mlp.fc1``, ``mlp.fc2``), each fed ``x + pos``; final ``norm``;
- output: ``[cls token; max over group tokens]`` = ``2 * width`` (768 for ULIP-2), the pre-projection
  feature CleanPose distils.

:func:`load_ulip_pointbert` keeps the ``module.point_encoder.`` keys of a ULIP checkpoint (``state_dict``
entry; the file may also hold an ``argparse.Namespace``, allowed explicitly) and strict-loads them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from demopose._checks import check_shape
from demopose.layers.knn import gather_points, knn_indices
from demopose.layers.pointnet2 import farthest_point_sample
from demopose.layers.vit import ViTBlock

__all__ = ["PointBERT", "load_ulip_pointbert"]


class _Encoder(nn.Module):
    def __init__(self, out: int, widths: tuple[int, int] = (128, 256)) -> None:
        super().__init__()
        a, b = widths
        self.first_conv = nn.Sequential(nn.Conv1d(3, a, 1), nn.BatchNorm1d(a), nn.ReLU(inplace=True),
                                        nn.Conv1d(a, b, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(2 * b, 2 * b, 1), nn.BatchNorm1d(2 * b), nn.ReLU(inplace=True),
                                         nn.Conv1d(2 * b, out, 1))

    def forward(self, groups: torch.Tensor) -> torch.Tensor:  # (B, G, S, 3) -> (B, G, out)
        B, G, S, _ = groups.shape
        f = self.first_conv(groups.reshape(B * G, S, 3).transpose(1, 2))  # (BG, 256, S)
        f = torch.cat([f.amax(-1, keepdim=True).expand(-1, -1, S), f], dim=1)
        return self.second_conv(f).amax(-1).view(B, G, -1)


class _Blocks(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(ViTBlock(dim, heads, qkv_bias=False) for _ in range(depth))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x + pos)
        return x


class PointBERT(nn.Module):
    """Point-BERT encoder; defaults are ULIP-2's (width 384, depth 12, 6 heads, 512 groups x 32,
    encoder dims 256, group encoder widths (128, 256)). Drop-path is omitted (the teacher always runs in eval
    mode). ``group_widths`` ``(a, b)`` sizes the per-group mini-PointNet (3 -> a -> b, then 2b -> 2b ->
    encoder_dims); ULIP's layout is (128, 256), smaller values make CPU-sized teachers.

    Shapes: ``(B, N, 3)`` (unit-sphere normalised) -> ``(B, 2 * width)``; ``out_channels = 2 * width``.
    """

    def __init__(self, width: int = 384, depth: int = 12, heads: int = 6, num_group: int = 512,
                 group_size: int = 32, encoder_dims: int = 256, group_widths: tuple[int, int] = (128, 256)) -> None:
        super().__init__()
        self.num_group, self.group_size, self.out_channels = num_group, group_size, 2 * width
        self.encoder = _Encoder(encoder_dims, tuple(group_widths))
        self.reduce_dim = nn.Linear(encoder_dims, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.cls_pos = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, width))
        self.blocks = _Blocks(width, depth, heads)
        self.norm = nn.LayerNorm(width)

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        check_shape(pts, "B N 3", "pts")
        B, N, _ = pts.shape
        g = min(self.num_group, N)
        centres = gather_points(pts, farthest_point_sample(pts, g))
        idx = knn_indices(centres, pts, k=min(self.group_size, N))
        groups = gather_points(pts, idx) - centres.unsqueeze(2)
        tokens = self.reduce_dim(self.encoder(groups))
        x = torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(B, -1, -1), self.pos_embed(centres)], dim=1)
        x = self.norm(self.blocks(x, pos))
        return torch.cat([x[:, 0], x[:, 1:].amax(1)], dim=-1)


def load_ulip_pointbert(model: PointBERT, path: str | Path, prefix: str = "module.point_encoder.") -> None:
    """Strict-load the point encoder of a local ULIP checkpoint into ``model``.

    Raises:
        FileNotFoundError: no file; ValueError: no ``prefix`` keys, or shapes/keys that do not match.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ULIP checkpoint {p} does not exist")
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not sub:
        raise ValueError(f"{p}: no keys starting with {prefix!r} in its state_dict")
    try:
        model.load_state_dict(sub, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{p}: the {prefix!r} weights do not fit this PointBERT ({e})") from None
