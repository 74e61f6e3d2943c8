"""Which BatchNorm layers of a fitted CleanPose see other statistics under bf16 than in fp32 (issue #16).

Fits as ``benchmarks/cleanpose_bn_precision.py`` (AG-Pose base: front door off, ``online_aug`` off), then for every
BatchNorm layer compares its running variance, and the variance of its input under bf16 autocast, with the variance of
its fp32 input on the fitted batch; prints the ten layers with the largest ratio.

Usage::

    python benchmarks/cleanpose_bn_layers.py DATA 400   # benchmarks/results/cleanpose_bn_precision/bn_layers.log
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cleanpose_bn_precision import fitted_model  # noqa: E402


def main() -> None:
    model, batch = fitted_model(sys.argv[1], int(sys.argv[2]),
                                ["model.args.online_aug=false", "model.args.causal.enabled=false"])
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name: str):
        def fn(_m, args, _out):
            x = args[0].float()
            x = x.transpose(0, 1).reshape(x.shape[1], -1) if x.dim() > 2 else x.t()  # (C, everything else)
            stats[name] = (x.mean(1), x.var(1, unbiased=False))
        return fn

    for n, m in model.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.register_forward_hook(hook(n))
    model.eval()
    with torch.no_grad():
        model(batch)
    fp32 = dict(stats)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(batch)
    bf16 = dict(stats)
    modules = dict(model.named_modules())
    rows = []
    for n, (mu, var) in fp32.items():
        ratio = modules[n].running_var.float() / var.clamp_min(1e-12)
        rows.append((float(ratio.max()), float(ratio.median()), n,
                     float((mu.abs() / var.sqrt().clamp_min(1e-12)).max()),
                     float((bf16[n][1] / var.clamp_min(1e-12)).max())))
    for top, median, name, mean_over_std, bf16_ratio in sorted(rows, reverse=True)[:10]:
        print(f"running/fp32 var max {top:.2f} median {median:.2f}  {name}  |mean|/std max {mean_over_std:.1f}  "
              f"bf16var/fp32var max {bf16_ratio:.2f}")


if __name__ == "__main__":
    main()
