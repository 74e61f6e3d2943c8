"""GhostNet backbone (Han, Wang, Tian, Guo, Xu, Xu, "GhostNet: More Features from Cheap Operations",
CVPR 2020), written from the paper's stage table (notes/monocular.md §2).

Ghost module: a 1×1 "primary" conv makes ``ceil(n/2)`` intrinsic maps, a depthwise 3×3 "cheap" conv
makes as many ghost maps; the output is their concatenation truncated to ``n`` channels. A Ghost
bottleneck is Ghost(expand, ReLU) -> [depthwise k×k stride 2 + BN] -> [SE, hard-sigmoid gate] ->
Ghost(project, linear), plus an identity shortcut or depthwise k×k + BN + 1×1 + BN.

Parameter names follow the published checkpoints (huawei-noah Efficient-AI-Backbones
``state_dict_73.98.pth`` and timm ``ghostnet_100``): ``conv_stem``, ``bn1``,
``blocks.{i}.{j}.ghost1.primary_conv.{0,1}``, ``...cheap_operation.{0,1}``, ``conv_dw``, ``bn_dw``,
``se.conv_reduce``, ``se.conv_expand``, ``ghost2.*``, ``shortcut.{0..3}``, ``blocks.9.0.conv``,
``blocks.9.0.bn1``; the classifier keys (``conv_head``, ``classifier``) are dropped by
:func:`checkpoint_filter_fn`, so a published checkpoint loads into the trunk with no missing key.

Feature taps (NanoDet ``out_stages=(4, 6, 9)``): outputs of ``blocks.4`` (stride 8), ``blocks.6``
(stride 16) and ``blocks.9`` (the 1×1 conv to 960, stride 32): 40 / 112 / 960 channels at width 1.0.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GHOSTNET_STAGES", "GhostBottleneck", "GhostModule", "GhostNet", "SqueezeExcite",
           "checkpoint_filter_fn", "load_pretrained", "make_divisible"]

GHOSTNET_STAGES: tuple[tuple[tuple[int, int, int, float, int], ...], ...] = (
    # (kernel, expansion channels, output channels, SE ratio, stride) per bottleneck; blocks.0 .. blocks.8
    ((3, 16, 16, 0.0, 1),),
    ((3, 48, 24, 0.0, 2),),
    ((3, 72, 24, 0.0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0.0, 2),),
    ((3, 200, 80, 0.0, 1), (3, 184, 80, 0.0, 1), (3, 184, 80, 0.0, 1), (3, 480, 112, 0.25, 1),
     (3, 672, 112, 0.25, 1)),
    ((5, 672, 160, 0.25, 2),),
    ((5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1)),
)
"""GhostNet-1.0x bottlenecks (Han et al. 2020, Table 1); ``blocks.9`` is a 1×1 ConvBnAct to 960."""


def make_divisible(v: float, divisor: int = 4, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` without going below 90 % of ``v`` (MobileNet rule)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _act(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"activation: expected 'relu' or 'leaky_relu', got {name!r}")


class GhostModule(nn.Module):
    """``(B, C_in, H, W) -> (B, C_out, H/s, W/s)``: primary conv (``ceil(C_out/2)`` maps) + depthwise
    cheap conv (the ghost maps), concatenated and truncated to ``C_out``."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, ratio: int = 2, dw_size: int = 3,
                 stride: int = 1, act: str | None = "relu") -> None:
        super().__init__()
        self.out_chs = out_chs
        init = math.ceil(out_chs / ratio)
        new = init * (ratio - 1)
        self.primary_conv = nn.Sequential(
            nn.Conv2d(in_chs, init, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init), _act(act) if act else nn.Identity())
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init, new, dw_size, 1, dw_size // 2, groups=init, bias=False),
            nn.BatchNorm2d(new), _act(act) if act else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        return torch.cat([x1, x2], dim=1)[:, : self.out_chs]


class SqueezeExcite(nn.Module):
    """Channel attention: global mean -> 1×1 reduce (ratio, multiple of 4) -> ReLU -> 1×1 expand ->
    hard sigmoid ``relu6(x + 3) / 6`` gate."""

    def __init__(self, chs: int, se_ratio: float = 0.25, divisor: int = 4) -> None:
        super().__init__()
        reduced = make_divisible(chs * se_ratio, divisor)
        self.conv_reduce = nn.Conv2d(chs, reduced, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(reduced, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * F.relu6(s + 3.0) / 6.0


class GhostBottleneck(nn.Module):
    """Ghost bottleneck ``(B, C_in, H, W) -> (B, C_out, H/s, W/s)`` (Han et al. 2020, Fig. 3)."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, dw_kernel_size: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, act: str = "relu") -> None:
        super().__init__()
        self.stride = stride
        self.ghost1 = GhostModule(in_chs, mid_chs, act=act)
        if stride > 1:
            self.conv_dw = nn.Conv2d(mid_chs, mid_chs, dw_kernel_size, stride, (dw_kernel_size - 1) // 2,
                                     groups=mid_chs, bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_chs)
        self.se = SqueezeExcite(mid_chs, se_ratio) if se_ratio > 0 else None
        self.ghost2 = GhostModule(mid_chs, out_chs, act=None)
        if in_chs == out_chs and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_chs, in_chs, dw_kernel_size, stride, (dw_kernel_size - 1) // 2, groups=in_chs,
                          bias=False),
                nn.BatchNorm2d(in_chs),
                nn.Conv2d(in_chs, out_chs, 1, bias=False),
                nn.BatchNorm2d(out_chs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ghost1(x)
        if self.stride > 1:
            y = self.bn_dw(self.conv_dw(y))
        if self.se is not None:
            y = self.se(y)
        return self.ghost2(y) + self.shortcut(x)


class ConvBnAct(nn.Module):
    """``conv`` (no bias) + ``bn1`` + activation (the names of ``blocks.9.0`` in the checkpoints)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, act: str = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, 1, kernel_size // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.act1 = _act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv(x)))


class GhostNet(nn.Module):
    """GhostNet trunk returning multi-scale features.

    Args:
        width: channel multiplier (1.0 is the published model; 0.5 / 1.3 exist as well).
        out_stages: indices of ``blocks`` whose outputs are returned (default (4, 6, 9): strides
            8 / 16 / 32).
        act: ``relu`` (paper, timm) or ``leaky_relu``.

    ``forward(x (B, 3, H, W)) -> list of (B, C_i, H/s_i, W/s_i)``; ``out_channels`` lists ``C_i`` and
    ``strides`` lists ``s_i``.
    """

    def __init__(self, width: float = 1.0, out_stages: Sequence[int] = (4, 6, 9), act: str = "relu") -> None:
        super().__init__()
        if not out_stages or min(out_stages) < 0 or max(out_stages) > 9:
            raise ValueError(f"out_stages: expected indices in 0..9, got {tuple(out_stages)}")
        self.out_stages = tuple(int(i) for i in out_stages)
        stem = make_divisible(16 * width, 4)
        self.conv_stem = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.act1 = _act(act)
        chs, stride = stem, 2
        stages: list[nn.Module] = []
        stage_chs, stage_strides = [], []
        for cfg in GHOSTNET_STAGES:
            layers = []
            for k, exp, c, se, s in cfg:
                out = make_divisible(c * width, 4)
                mid = make_divisible(exp * width, 4)
                layers.append(GhostBottleneck(chs, mid, out, k, s, se, act=act))
                chs, stride = out, stride * s
            stages.append(nn.Sequential(*layers))
            stage_chs.append(chs)
            stage_strides.append(stride)
        last = make_divisible(960 * width, 4)
        stages.append(nn.Sequential(ConvBnAct(chs, last, 1, act=act)))
        stage_chs.append(last)
        stage_strides.append(stride)
        self.blocks = nn.Sequential(*stages)
        self.out_channels = [stage_chs[i] for i in self.out_stages]
        self.strides = [stage_strides[i] for i in self.out_stages]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random init: Kaiming-normal convs (fan out), BN weight 1 / bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act1(self.bn1(self.conv_stem(x)))
        outs = []
        last = max(self.out_stages)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.out_stages:
                outs.append(x)
            if i == last:
                break
        return outs


_DROPPED_PREFIXES = ("conv_head.", "classifier.", "fc.")


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: GhostNet) -> dict[str, torch.Tensor]:
    """Map a published GhostNet checkpoint (Huawei ``.pth`` / timm) to :class:`GhostNet` keys.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}``, strips ``module.`` (DataParallel) and
    ``backbone.`` (NanoDet) prefixes, drops the ImageNet classifier (``conv_head``, ``classifier``),
    and fills missing BN ``num_batches_tracked`` buffers from the model.
    """
    for key in ("state_dict", "model"):
        if key in state_dict and isinstance(state_dict[key], Mapping):
            state_dict = state_dict[key]
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        if k.startswith(_DROPPED_PREFIXES):
            continue
        out[k] = v
    for k, v in own.items():
        if k.endswith("num_batches_tracked") and k not in out:
            out[k] = v
    return out


def load_pretrained(model: GhostNet, path: str | os.PathLike,
                    filter_fn: Callable[[Mapping[str, torch.Tensor], GhostNet], dict] = checkpoint_filter_fn,
                    strict: bool = True) -> GhostNet:
    """Load a local GhostNet checkpoint (``.pth`` or ``.safetensors``) into ``model``; never downloads.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: keys or shapes do not fit (``strict``), naming the first missing / unexpected keys.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GhostNet pretrained weights: {path} does not exist")
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError as e:  # pragma: no cover - optional dependency
            raise ValueError(f"{path}: reading .safetensors needs the 'safetensors' package") from e
        sd = load_file(path)
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = filter_fn(sd, model)
    own = model.state_dict()
    bad = [k for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"{path}: shape mismatch for {bad[:5]} (is it GhostNet at width "
                         f"{model.out_channels}?)")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if strict and (missing or unexpected):
        raise ValueError(f"{path}: does not fit GhostNet: missing keys {missing[:5]}, unexpected keys "
                         f"{unexpected[:5]}")
    return model
