"""Two measurements behind the overfit check's definition and its open lead (docs/checkpoints.md, "Overfit checks").

1. Random pooling: ``gpv_small`` fitted to the check's 32 instances (400 steps, dropout off, cosine; exactly
   :func:`demopose.benchmark.overfit.overfit_pose`'s fit), then each instance's translation over 8 seeded
   eval-mode draws of the backbone's random pooling: spread per instance, the share within 1 cm for a single
   draw, and the error of the mean of the draws.
2. Feature scales: the RMS per channel of the sampled PAN features a DeMo-Pose concatenation appends, against
   the 3D-GC per-point features of a freshly initialised backbone, on the same instances.

Usage::

    python benchmarks/overfit_diagnostics.py --data DATA [--steps 400]
        [--out benchmarks/results/overfit_diagnostics.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "overfit_diagnostics.json")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    import demopose

    demopose.set_thread_defaults()
    import numpy as np
    import torch

    from demopose.benchmark.latency import machine_description
    from demopose.benchmark.overfit import _fit, _fixed_instances
    from demopose.engine import load_config
    from demopose.engine.build import build_model_from_config
    from demopose.engine.trainer import seed_everything
    from demopose.io import write_json_atomic

    # 1. random pooling on a fitted gpv_small
    cfg = load_config("gpv_synth_small", ["data.n_points=512", f"data.root={args.data}"])
    seed_everything(0)
    model = build_model_from_config(cfg)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    batch = _fixed_instances(cfg, model, 32)
    params = [p for p in model.parameters() if p.requires_grad]
    _fit(model, batch, torch.optim.Adam(params, lr=1e-3), args.steps, "auto", 5.0, 50)
    model.eval()
    with torch.no_grad():
        ts = torch.stack([model(batch, generator=torch.Generator().manual_seed(k)).t.double()
                          for k in range(args.draws)])
    gt = batch["t"].double()
    per_draw = ((ts - gt).norm(dim=-1) * 100).numpy()  # (draws, instances) cm
    spread = (ts.std(0).norm(dim=-1) * 100).numpy()
    mean_err = ((ts.mean(0) - gt).norm(dim=-1) * 100).numpy()
    pooling = {"steps": args.steps, "draws": args.draws,
               "translation_spread_cm": {"median": float(np.median(spread)), "max": float(spread.max())},
               "single_draw_within_1cm": [float(v) for v in (per_draw < 1.0).mean(1)],
               "mean_of_draws_error_cm": {"median": float(np.median(mean_err)), "max": float(mean_err.max()),
                                          "within_1cm": float((mean_err < 1.0).mean())}}
    print(pooling, flush=True)

    # 2. scales of the two feature streams of DeMo-Pose's concatenation
    cfg = load_config("demopose_synth_small", ["data.n_points=512", f"data.root={args.data}"])
    seed_everything(0)
    dm = build_model_from_config(cfg).eval()
    b = _fixed_instances(cfg, dm, 32)
    with torch.no_grad():
        rgb = dm.point_features(b["image"], b["image_pixels"], b["image_index"])
        centred = b["points"] - b["points"].double().mean(1, keepdim=True).float()
        geo, _ = dm.pose.backbone(centred)
    scales = {"rgb_rms_per_channel": float(rgb.pow(2).mean().sqrt()), "rgb_channels": int(rgb.shape[-1]),
              "geometric_rms_per_channel_at_init": float(geo.pow(2).mean().sqrt()),
              "geometric_channels": int(geo.shape[-1])}
    print(scales, flush=True)
    write_json_atomic(args.out, {"pooling": pooling, "feature_scales": scales, "machine": machine_description(),
                                 "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
