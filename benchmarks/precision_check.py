"""Accuracy of bf16 training (issue #15, item 2): ``gpv_small`` and ``demopose_small``, fp32 against bf16, two seeds
each, the same budget; validation metrics side by side with the seed spread.

Usage::

    python benchmarks/precision_check.py --data DATA --runs RUNS [--summarize-only]

For every model, seed and precision this trains (skipping runs that already hold ``model_final.pt``)::

    demopose train gpv_synth_small --data DATA --out RUNS/gpv_synth_small_s{seed}_{precision} \\
        train.max_steps=400 train.eval_every=400 train.val_frames=50 data.val_subset=real_val \\
        train.checkpoint_every=400 train.log_every=20 train.init_from=checkpoints/gpv_synth_small.pt \\
        train.precision={precision} train.seed={seed}
    demopose train demopose_synth_small ... train.max_steps=300 train.eval_every=300 train.checkpoint_every=300 \\
        train.init_from=checkpoints/gpv_synth_small.pt ...

(Both warm-started from the shipped GPV-Pose weights, as the bundled DeMo-Pose is made: from scratch, a few hundred
steps leave every pose metric at 0 and the comparison empty.) ``DATA`` needs ``Real/train`` and ``Real/val``
(``demopose synth DATA --split val --seed 3 --frames 50``): the comparison never looks at a test split. Then it
writes ``benchmarks/results/precision_check.json`` / ``.md``: per model and precision the validation NOCS mAPs
(mean over categories, ``nocs`` IoU) of each seed, their mean and standard deviation, the training wall time, and
whether the fp32-bf16 difference of 10°5cm and IoU50 is within the seed spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results" / "precision_check.json"
METRICS = ("iou25", "iou50", "iou75", "5deg2cm", "5deg5cm", "10deg2cm", "10deg5cm", "10deg10cm")
RUNS = {  # model config -> extra overrides
    "gpv_synth_small": ["train.max_steps=400", "train.eval_every=400", "train.checkpoint_every=400",
                        "train.init_from=checkpoints/gpv_synth_small.pt"],
    "demopose_synth_small": ["train.max_steps=300", "train.eval_every=300", "train.checkpoint_every=300",
                             "train.init_from=checkpoints/gpv_synth_small.pt"],
}
SEEDS = (0, 1)
PRECISIONS = ("fp32", "bf16")


def _command(config: str, data: Path, out: Path, seed: int, precision: str) -> list[str]:
    return ["demopose", "train", config, "--data", str(data), "--out", str(out), *RUNS[config],
            "train.val_frames=50", "data.val_subset=real_val", "train.log_every=20", f"train.precision={precision}",
            f"train.seed={seed}", "--no-progress"]


def _final_validation(run: Path) -> tuple[dict[str, float], float]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    val = [x for x in lines if any(k.startswith("val/nocs/mean/") for k in x)][-1]
    return {m: 100 * val[f"val/nocs/mean/{m}"] for m in METRICS}, val["step"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--runs", type=Path, required=True, help="folder of the training runs")
    ap.add_argument("--summarize-only", action="store_true", help="only read the runs that exist")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from demopose.benchmark.latency import machine_description
    from demopose.io import write_json_atomic, write_text_atomic

    rows: dict[str, dict] = {}
    for config in RUNS:
        for precision in PRECISIONS:
            seeds = []
            for seed in SEEDS:
                run = args.runs / f"{config}_s{seed}_{precision}"
                if not (run / "model_final.pt").is_file():
                    if args.summarize_only:
                        continue
                    t0 = time.perf_counter()
                    subprocess.run(_command(config, args.data, run, seed, precision), check=True, cwd=REPO)
                    print(f"{run.name}: {time.perf_counter() - t0:.0f} s", flush=True)
                metrics, step = _final_validation(run)
                wall = (run / "model_final.pt").stat().st_mtime - (run / "config.yaml").stat().st_mtime
                seeds.append({"seed": seed, "step": step, "metrics": metrics, "wall_s": round(wall)})
            if seeds:
                rows[f"{config} {precision}"] = {
                    "config": config, "precision": precision, "seeds": seeds,
                    "mean": {m: statistics.mean(s["metrics"][m] for s in seeds) for m in METRICS},
                    "std": {m: statistics.pstdev(s["metrics"][m] for s in seeds) for m in METRICS},
                }
    verdicts = {}
    for config in RUNS:
        a, b = rows.get(f"{config} fp32"), rows.get(f"{config} bf16")
        if a and b and len(a["seeds"]) == len(b["seeds"]) == len(SEEDS):
            verdicts[config] = {}
            for m in ("10deg5cm", "iou50"):
                # seed spread: the larger of the two precisions' per-seed ranges
                spread = max(max(s["metrics"][m] for s in r["seeds"]) - min(s["metrics"][m] for s in r["seeds"])
                             for r in (a, b))
                diff = b["mean"][m] - a["mean"][m]
                verdicts[config][m] = {"bf16_minus_fp32": diff, "seed_spread": spread,
                                       "within_seed_spread": abs(diff) <= spread}
    doc = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
           "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(), "data": str(args.data),
           "validation": "real_val (50 frames, seed 3), nocs IoU, mean over categories, in %",
           "runs": rows, "verdicts": verdicts}
    write_json_atomic(args.out, doc)
    md = ["# bf16 against fp32 training", "",
          f"Validation NOCS mAP (%) at the last step, per seed; machine {doc['machine']['cpu']} "
          f"({', '.join(doc['machine'].get('cpu_flags', []))}). Command: `{doc['command']}`.", "",
          "| model | precision | seed | step | " + " | ".join(METRICS) + " | wall s |",
          "|---" * (len(METRICS) + 5) + "|"]
    for r in rows.values():
        for s in r["seeds"]:
            md.append(f"| {r['config']} | {r['precision']} | {s['seed']} | {s['step']} | "
                      + " | ".join(f"{s['metrics'][m]:.1f}" for m in METRICS) + f" | {s['wall_s']} |")
        md.append(f"| {r['config']} | {r['precision']} | mean ± std | | "
                  + " | ".join(f"{r['mean'][m]:.1f} ± {r['std'][m]:.1f}" for m in METRICS) + " | |")
    md.append("")
    for config, v in verdicts.items():
        for m, x in v.items():
            md.append(f"- {config}, {m}: bf16 − fp32 = {x['bf16_minus_fp32']:+.1f} points, seed spread "
                      f"{x['seed_spread']:.1f}: {'within' if x['within_seed_spread'] else 'OUTSIDE'} the spread.")
    write_text_atomic(args.out.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
