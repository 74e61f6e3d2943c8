"""Per-point RGB–geometry fusion of DeMo-Pose (ICASSP 2026, seeds/000 §2.3 and its Table 3).

Every point carries a geometric feature ``g (B, N, C2)`` from the 3D-GC backbone and an RGB feature
``r (B, N, C1)`` sampled from the frozen monocular PAN map at its pixel
(:func:`demopose.layers.feature_sampling.sample_feature_map`). The fusion variants:

- ``concat`` (the paper's best): ``[g, r]``, ``C2 + C1`` channels;
- ``add``: ``g + P r`` with a linear projection ``P: C1 -> C2``;
- ``hadamard``: ``g ⊙ P r``;
- ``mlp``: ``g + MLP([g, r])`` (MLP with a skip connection);
- ``attention``: ``g + Attn(q = g, k = v = P r)`` per point over the RGB features of the
  instance's points (cross-modal attention with a skip connection).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FUSIONS", "PointFusion"]

FUSIONS = ("concat", "add", "hadamard", "mlp", "attention")


class PointFusion(nn.Module):
    """Fuse per-point geometric ``(B, N, C2)`` and RGB ``(B, N, C1)`` features; ``out_channels`` tells the
    width of the result."""

    def __init__(self, kind: str, geo_channels: int, rgb_channels: int, heads: int = 4) -> None:
        super().__init__()
        if kind not in FUSIONS:
            raise ValueError(f"fusion: expected one of {FUSIONS}, got {kind!r}")
        self.kind = kind
        c2, c1 = geo_channels, rgb_channels
        self.out_channels = c2 + c1 if kind == "concat" else c2
        if kind in ("add", "hadamard", "attention"):
            self.proj = nn.Linear(c1, c2)
        if kind == "mlp":
            self.mlp = nn.Sequential(nn.Linear(c1 + c2, c2), nn.ReLU(inplace=True), nn.Linear(c2, c2))
        if kind == "attention":
            heads = heads if c2 % heads == 0 else 1
            self.attn = nn.MultiheadAttention(c2, heads, batch_first=True)
            self.norm = nn.LayerNorm(c2)

    def forward(self, geo: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        rgb = rgb.to(geo.dtype)
        if self.kind == "concat":
            return torch.cat([geo, rgb], dim=-1)
        if self.kind == "add":
            return geo + self.proj(rgb)
        if self.kind == "hadamard":
            return geo * self.proj(rgb)
        if self.kind == "mlp":
            return geo + self.mlp(torch.cat([geo, rgb], dim=-1))
        kv = self.proj(rgb)
        out, _ = self.attn(self.norm(geo), kv, kv, need_weights=False)
        return geo + out
