"""CleanPose overfit diagnostic (issue #16): fit 32 fixed training instances for STEPS steps (the overfit check's
recipe: Adam 1e-3 with cosine decay, bf16 autocast where available), then score the fitted batch in train mode, in eval
mode in fp32, in eval mode with batch statistics, under bf16 autocast, and in fp32 after the BatchNorm statistics are
recomputed in fp32 on the batch.

Usage::

    python benchmarks/cleanpose_bn_precision.py DATA STEPS [overrides ...]
    # the run docs/checkpoints.md quotes (benchmarks/results/cleanpose_bn_precision/agpose_base_noaug_400steps.log):
    python benchmarks/cleanpose_bn_precision.py DATA 400 model.args.online_aug=false model.args.causal.enabled=false
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from demopose.benchmark import overfit as of  # noqa: E402
from demopose.engine import load_config  # noqa: E402
from demopose.engine.build import build_model_from_config  # noqa: E402
from demopose.engine.precise_bn import update_bn_stats  # noqa: E402
from demopose.engine.trainer import seed_everything  # noqa: E402


def fitted_model(data: str, steps: int, extra: list[str]):
    """A ``cleanpose_small`` fitted to the overfit check's 32 instances of ``data``; ``(model, batch)``."""
    torch.set_num_threads(1)
    cfg = load_config("cleanpose_synth_small", ["data.n_points=512", f"data.root={data}", *extra])
    seed_everything(0)
    model = build_model_from_config(cfg)
    batch = of._fixed_instances(cfg, model, 32)
    params = [p for p in model.parameters() if p.requires_grad]
    curve, sec = of._fit(model, batch, torch.optim.Adam(params, lr=1e-3), steps, "auto", 5.0, 100)
    print("curve", [(s, round(loss, 3)) for s, loss in curve], f"{sec:.0f}s", flush=True)
    return model, batch


def report(model, batch, tag: str) -> None:
    with torch.no_grad():
        pred = model(batch)
    r, t = of._errors(pred, batch)
    print(f"{tag}: rot med/max {np.median(r):.2f}/{r.max():.1f}  t med/max {np.median(t):.2f}/{t.max():.2f} "
          f"within {np.mean((r < 5) & (t < 1)):.2f}", flush=True)


def main() -> None:
    model, batch = fitted_model(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    print("batchnorms", len(bns))
    model.train()
    report(model, batch, "train")
    model.eval()
    report(model, batch, "eval")
    for m in bns:
        m.train()
    report(model, batch, "eval+BN batch stats")
    model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        report(model, batch, "eval bf16")
    update_bn_stats(model, [batch] * 4)  # what training now does (train.precise_bn), on the fitted batch
    model.eval()
    report(model, batch, "eval after precise BN (4 passes)")


if __name__ == "__main__":
    main()
