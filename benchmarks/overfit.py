"""Overfit checks of every model family (issue #16, item 1): :mod:`demopose.benchmark.overfit`.

Usage::

    python benchmarks/overfit.py --data DATA [--families gpv_small,gpv_small_dropout,...] [--steps 200]

``DATA`` is a ``demopose synth`` dataset (its ``Real/train`` split). Every family fits ``--instances`` fixed
training instances (the detector: ``--images`` frames) from random weights, dropout off, the learning rate
decayed by a cosine; DeMo-Pose rows train the fused network
from scratch on top of the frozen bundled detector. Writes ``benchmarks/results/overfit.json`` (each family's
loss curve, per-instance errors, pass / fail, seconds) with the machine; a family is re-run only when asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results" / "overfit.json"

# family -> (config, overrides); pose families unless the config is the detector's
FAMILIES = {
    "gpv_small": ("gpv_synth_small", []),
    "demopose_small_concat": ("demopose_synth_small", ["model.args.fusion=concat"]),
    # diagnostic: the PAN features concatenated raw (the paper; rgb_norm=none), as every fusion was before config
    # version 4
    "demopose_small_concat_raw_rgb": ("demopose_synth_small",
                                      ["model.args.fusion=concat", "model.args.rgb_norm=none"]),
    # diagnostic: concat without the Mesh-Point head and loss (λ = 2000 outweighs the pose terms early on)
    "demopose_small_concat_no_mpl": ("demopose_synth_small", ["model.args.fusion=concat", "model.args.mesh_points=0"]),
    "demopose_small_add": ("demopose_synth_small", ["model.args.fusion=add"]),
    "demopose_small_hadamard": ("demopose_synth_small", ["model.args.fusion=hadamard"]),
    "demopose_small_mlp": ("demopose_synth_small", ["model.args.fusion=mlp"]),
    "demopose_small_attention": ("demopose_synth_small", ["model.args.fusion=attention"]),
    # AG-Pose / CleanPose augment inside the network in training mode (a random SE(3) and scale per instance,
    # models/cleanpose.py online_aug): off, like the data augmentation, so that the 32 instances stay fixed
    "cleanpose_small": ("cleanpose_synth_small", ["model.args.online_aug=false"]),
    "mono_small": ("mono_synth_small", []),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="the demopose synth dataset (its Real/train split); not needed with --table")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--instances", type=int, default=32)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--points", type=int, default=512, help="points per instance (data.n_points; default 512)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--table", action="store_true", help="print the results file's families as a Markdown table")
    args = ap.parse_args()
    if args.table:
        print(markdown_table(json.loads(args.out.read_text())))
        return 0
    if not args.data:
        ap.error("--data is required (unless --table)")

    sys.path.insert(0, str(REPO / "src"))
    import torch

    from demopose.benchmark.latency import machine_description
    from demopose.benchmark.overfit import overfit_detector, overfit_pose
    from demopose.io import write_json_atomic

    torch.set_num_threads(args.threads)
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {"families": {}}
    for name in args.families.split(","):
        config, overrides = FAMILIES[name]
        t0 = time.perf_counter()
        if config.startswith("mono"):
            r = overfit_detector(config, overrides, data=str(args.data), images=args.images, steps=args.steps,
                                 precision=args.precision)
            print(f"{name}: AP50 {r.ap50:.3f} after {r.steps} steps, loss {r.loss_first:.2f} -> {r.loss_last:.2f}, "
                  f"{'PASS' if r.passed else 'FAIL'} ({time.perf_counter() - t0:.0f} s)", flush=True)
        else:
            r = overfit_pose(config, [*overrides, f"data.n_points={args.points}"], data=str(args.data),
                             instances=args.instances, steps=args.steps, lr=args.lr, precision=args.precision)
            d = r.to_dict()
            print(f"{name}: {100 * r.within_5deg_1cm:.0f} % within 5 deg / 1 cm (mean of {r.draws} draws; one draw: "
                  f"{100 * r.within_5deg_1cm_single_draw:.0f} %), rotation median / max "
                  f"{d['rotation_deg_median']:.2f} / {d['rotation_deg_max']:.2f} deg, translation median / max "
                  f"{d['translation_cm_median']:.2f} / {d['translation_cm_max']:.2f} cm, loss {r.loss_first:.2f} -> "
                  f"{r.loss_last:.2f}, {'PASS' if r.passed else 'FAIL'} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
        extra = {}
        if config.startswith("demopose"):  # which RGB normalisation the fused row ran with (docs table column)
            from demopose.engine import load_config

            extra["rgb_norm"] = str(load_config(config, overrides).model.args.get("rgb_norm", "layernorm"))
        command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
        doc["families"][name] = {"config": config, **r.to_dict(), **extra, "points": args.points, "lr": args.lr,
                                 "command": command, "threads": args.threads,
                                 "date": time.strftime("%Y-%m-%d %H:%M"), "load_average": list(os.getloadavg())}
        doc.update(command=command,  # the latest run's; each family's own is in its record
                   machine=machine_description(), threads=args.threads, data=str(args.data))
        write_json_atomic(args.out, doc)  # after every family: an interrupted run keeps what it measured
    return 0


def markdown_table(doc: dict) -> str:
    """The families of a results file as the Markdown table of docs/checkpoints.md."""
    rows = ["| family | rgb_norm | precise BN | within 5° / 1 cm (mean of draws) | one draw | "
            "rotation median / max (°) | translation median / max (cm) | loss first → last | steps | s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in doc["families"].items():
        if r.get("ap50") is not None:
            rows.append(f"| {name} | – | – | AP50 {r['ap50']:.2f}: {'pass' if r['passed'] else 'fail'} | – | – | – | "
                        f"{r['loss_first']:.2f} → {r['loss_last']:.2f} | {r['steps']} | {r['seconds']:.0f} |")
            continue
        # precise BN: whether the BatchNorm statistics were recomputed in fp32 after the fit (rows measured before
        # that step existed do not record the field: their eval used the statistics collected under bf16)
        pbn = "yes" if r.get("precise_bn") else "no"
        rows.append(f"| {name} | {r.get('rgb_norm', '–')} | {pbn} | {100 * r['within_5deg_1cm']:.0f} %: "
                    f"{'pass' if r['passed'] else 'fail'} | {100 * r['within_5deg_1cm_single_draw']:.0f} % | "
                    f"{r['rotation_deg_median']:.2f} / {r['rotation_deg_max']:.2f} | "
                    f"{r['translation_cm_median']:.2f} / {r['translation_cm_max']:.2f} | "
                    f"{r['loss_first']:.1f} → {r['loss_last']:.2f} | {r['steps']} | {r['seconds']:.0f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
