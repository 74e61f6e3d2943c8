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

Initialisation (the paper does not give one): every variant but ``concat`` starts as the identity on the
geometric features, ``fusion(g, r) = g`` — ``add``'s projection and the last layers of ``mlp`` and ``attention``
start at zero, ``hadamard``'s projection at weight 0 and bias 1. The RGB path then grows from zero instead of
adding random noise to the geometric features: a depth network warm-started from GPV-Pose starts exactly where
GPV-Pose was (``concat`` gets the same from :mod:`demopose.engine.warm_start`'s zero RGB columns), and a
from-scratch one starts as GPV-Pose's architecture. With random projections the warm-started ``add`` and
``hadamard`` rows of the first ablation collapsed (IoU50 3.4 / 0.4, ``benchmarks/results/ablation_demopose``),
while the same variants fitted from scratch pass the overfit check's rotation test
(``benchmarks/results/overfit.json``). The gradients reach every projection from the first step (for
``mlp`` / ``attention`` the inner layers from the second, once the zero layer has moved).

RGB normalisation (``rgb_norm``, not in the paper): the frozen PAN features arrive with a per-channel RMS of
about 5 against about 1.9 for the 3D-GC features at initialisation (``benchmarks/overfit_diagnostics.py``,
``feature_scales``), so with ``concat`` the 64 RGB channels carry more input energy than the 320 geometric ones and
the heads' first layers start dominated by colour; fitted from scratch, the concatenating model missed the overfit
check's 1 cm on 3 of 32 instances (``benchmarks/results/overfit.json``). ``rgb_norm="layernorm"`` puts each
point's RGB vector through a LayerNorm over its channels (learned gain 1, bias 0 at start) before any fusion;
``"none"`` (the paper, and checkpoints written before config version 4) uses the raw features.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FUSIONS", "RGB_NORMS", "PointFusion"]

FUSIONS = ("concat", "add", "hadamard", "mlp", "attention")
RGB_NORMS = ("none", "layernorm")


class PointFusion(nn.Module):
    """Fuse per-point geometric ``(B, N, C2)`` and RGB ``(B, N, C1)`` features; ``out_channels`` tells the
    width of the result."""

    def __init__(self, kind: str, geo_channels: int, rgb_channels: int, heads: int = 4,
                 rgb_norm: str = "none") -> None:
        super().__init__()
        if kind not in FUSIONS:
            raise ValueError(f"fusion: expected one of {FUSIONS}, got {kind!r}")
        if rgb_norm not in RGB_NORMS:
            raise ValueError(f"rgb_norm: expected one of {RGB_NORMS}, got {rgb_norm!r}")
        self.kind = kind
        c2, c1 = geo_channels, rgb_channels
        self.rgb_norm = nn.LayerNorm(c1) if rgb_norm == "layernorm" else None
        self.out_channels = c2 + c1 if kind == "concat" else c2
        if kind in ("add", "hadamard", "attention"):
            self.proj = nn.Linear(c1, c2)
        if kind == "mlp":
            self.mlp = nn.Sequential(nn.Linear(c1 + c2, c2), nn.ReLU(inplace=True), nn.Linear(c2, c2))
        if kind == "attention":
            heads = heads if c2 % heads == 0 else 1
            self.attn = nn.MultiheadAttention(c2, heads, batch_first=True)
            self.norm = nn.LayerNorm(c2)
        self.reset_identity()

    @torch.no_grad()
    def reset_identity(self) -> None:
        """Make the fusion the identity on the geometric features (module docstring); ``concat`` is unchanged."""
        if self.kind in ("add", "hadamard"):
            nn.init.zeros_(self.proj.weight)
            nn.init.constant_(self.proj.bias, 1.0 if self.kind == "hadamard" else 0.0)
        elif self.kind == "mlp":
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)
        elif self.kind == "attention":
            nn.init.zeros_(self.attn.out_proj.weight)
            nn.init.zeros_(self.attn.out_proj.bias)

    def normalise_rgb(self, rgb: torch.Tensor) -> torch.Tensor:
        """The RGB point features ``(B, N, C1)`` after ``rgb_norm`` (unchanged with ``none``): what
        ``concat`` appends, and what the split-weight ``concat`` heads of :mod:`demopose.models.gpv_fast`
        read in place of :meth:`forward`."""
        return rgb if self.rgb_norm is None else self.rgb_norm(rgb)

    def forward(self, geo: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        rgb = self.normalise_rgb(rgb.to(geo.dtype))
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
