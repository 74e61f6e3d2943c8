"""Test helper: trained-like BatchNorm statistics, so that BatchNorm folding has real work to do."""

from __future__ import annotations

import torch
from torch import nn


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters (negative scales too) for every BatchNorm of
    ``model`` (1-D and 2-D; affine parameters only where there are some). Returns ``model``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
                if m.affine:
                    m.weight.copy_(3 * torch.rand(c, generator=g) - 1.5)
                    m.bias.copy_(torch.rand(c, generator=g) - 0.5)
    return model
