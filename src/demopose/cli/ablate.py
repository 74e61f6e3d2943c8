"""Train and test the variants of an ablation study on the same data with equal budgets; write the tables.

Example (DeMo-Pose's Tables 1–3 on synthetic data)::

    demopose synth data/synth --frames 400 --style real --split train --seed 1 --workers 2
    demopose synth data/synth --frames 100 --style real --split test --seed 2 --workers 2
    demopose synth data/synth --frames 50 --style real --split val --seed 3 --workers 2
    demopose ablate demopose --data data/synth --out runs/ablation_demopose --steps 3000 --detector-steps 3000

Every variant is trained from scratch once per seed (3 seeds for the rows the papers' claims rest on, 2 for
the others, or ``--seeds N`` for all): a ``demopose train`` + ``demopose test`` pair run in a subprocess, logged
to ``<out>/<variant>/seed<k>/ablation.log``; the tables (mean ± std over the seeds, ``≈`` where a difference is
within the seed spread) go to ``<out>/results.md`` and ``<out>/results.json`` (per-seed metrics and commands).
Rerunning the same command skips finished seeds and resumes interrupted ones; several processes may run one
study at once (e.g. one per ``--only`` set, on several machines sharing the folder): a seed in progress
elsewhere is skipped.
"""

from __future__ import annotations

import argparse

HELP = "train + test the variants of an ablation study (equal budgets) and write markdown/JSON tables"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from demopose.benchmark.ablation import STUDIES

    parser.add_argument("study", choices=sorted(STUDIES), help="which study")
    parser.add_argument("--data", required=True, help="dataset root (the configs' train, val and test subsets: "
                                                       "data.train_subset, data.val_subset, data.test_subset)")
    parser.add_argument("--out", required=True, help="study folder")
    parser.add_argument("--steps", type=int, default=3000, help="training steps of every pose variant")
    parser.add_argument("--detector-steps", type=int, default=3000, help="training steps of the detector variant")
    parser.add_argument("--detector-checkpoint", help="use this trained detector instead of training one")
    parser.add_argument("--only", help="comma-separated variants to run (default: all)")
    parser.add_argument("--test-frames", type=int, default=0, help="test on at most N frames (0: all)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the runs (default: inherited)")
    parser.add_argument("--seeds", type=int, help="seeds of every variant (default: 3 for the rows the papers' "
                                                  "claims rest on, 2 for the others)")
    parser.add_argument("--init-from", metavar="CHECKPOINT",
                        help="warm-started study: every pose variant starts from these weights (train.init_from) "
                             "instead of from scratch; recorded in results.json and the tables")
    parser.add_argument("overrides", nargs="*", help="dotted overrides for every variant (train.batch_size=16 ...)")


def run(args: argparse.Namespace) -> int:
    from demopose.benchmark.ablation import STUDIES, format_markdown, run_study

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    doc = run_study(args.study, args.data, args.out, args.steps, args.detector_steps, only=only,
                    detector_checkpoint=args.detector_checkpoint, extra=args.overrides,
                    test_frames=args.test_frames, threads=args.threads, seeds=args.seeds,
                    init_from=args.init_from)
    print(format_markdown(STUDIES[args.study], doc))
    print(f"wrote {args.out}/results.md and {args.out}/results.json")
    return 0
