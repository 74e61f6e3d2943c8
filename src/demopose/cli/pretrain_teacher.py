"""Pretrain the offline distillation teacher: a Point-BERT on the synthetic generator's meshes (category
classification + SimCLR contrast between two partial, rotated views), see
:mod:`demopose.engine.teacher_pretrain`.

Examples::

    demopose pretrain-teacher --out checkpoints/teacher_synth_tiny.pt --arch tiny --steps 2000
    demopose pretrain-teacher --out teacher_ulip2size.pt --arch ulip2 --steps 20000 --device cuda
    demopose pretrain-teacher --out teacher_mine.pt --meshes my_meshes/      # my_meshes/<category>/*.obj

Then distil it: ``model.args.distill.teacher=pretrained model.args.distill.teacher_checkpoint=FILE`` (the ``arch`` must
give the model's ``teacher_dim``: tiny 64, small 256, ulip2 768). The checkpoint is written atomically
with its training record (loss per step, held-out accuracy, settings, command).
"""

from __future__ import annotations

import argparse

HELP = "pretrain the offline distillation teacher (Point-BERT) on the synthetic meshes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from demopose.engine.teacher_pretrain import PretrainConfig
    from demopose.models.point_teacher import TEACHER_ARCHS

    d = PretrainConfig()
    parser.add_argument("--out", required=True, help="teacher checkpoint to write (.pt)")
    parser.add_argument("--meshes", default="synthetic",
                        help="'synthetic' (procedural meshes of the 6 NOCS categories, refreshed on the fly) or a "
                             "folder DIR/<category>/*.obj|glb|ply")
    parser.add_argument("--arch", default=d.arch, choices=sorted(TEACHER_ARCHS),
                        help="Point-BERT size: " + ", ".join(f"{k} ({2 * v['width']}-d)"
                                                             for k, v in TEACHER_ARCHS.items()))
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="meshes per step (two views each)")
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--points", type=int, default=d.n_points, help="points per view")
    parser.add_argument("--pool", type=int, default=d.pool_per_category, help="meshes per category in the pool")
    parser.add_argument("--refresh", type=int, default=d.refresh_per_step,
                        help="pool meshes replaced by new ones every step (synthetic)")
    parser.add_argument("--contrastive-weight", type=float, default=d.contrastive_weight)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--log-every", type=int, default=100, help="held-out accuracy every N steps")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import shlex

    import numpy as np

    from demopose.engine.dist import resolve_device
    from demopose.engine.teacher_pretrain import PretrainConfig, config_dict, pretrain_teacher
    from demopose.models.point_teacher import save_teacher

    if args.steps < 1 or args.batch_size < 2:
        raise ValueError(f"--steps must be >= 1 and --batch-size >= 2 (got {args.steps}, {args.batch_size})")
    cfg = PretrainConfig(arch=args.arch, meshes=args.meshes, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         n_points=args.points, pool_per_category=args.pool, refresh_per_step=args.refresh,
                         contrastive_weight=args.contrastive_weight, seed=args.seed)
    device = resolve_device(args.device)
    encoder, rec = pretrain_teacher(cfg, device, progress=not args.no_progress, log_every=args.log_every)
    command = (f"demopose pretrain-teacher --out {shlex.quote(args.out)} --meshes {shlex.quote(args.meshes)} "
               f"--arch {args.arch} --steps {args.steps} --batch-size {args.batch_size} --lr {args.lr} "
               f"--points {args.points} --pool {args.pool} --refresh {args.refresh} "
               f"--contrastive-weight {args.contrastive_weight} --seed {args.seed}")
    save_teacher(args.out, encoder, cfg.arch, config=config_dict(cfg), record=rec, device=str(device),
                 command=command)
    k = max(1, min(100, args.steps // 10))
    print(f"loss: first {k} steps {np.mean(rec['loss'][:k]):.4f} -> last {k} steps {np.mean(rec['loss'][-k:]):.4f}")
    what = "held-out meshes" if rec["val_held_out"] else "new views of the training meshes"
    print(f"category accuracy on {rec['val_meshes']} {what}: {rec['val_acc'][-1][1]:.3f}")
    print(f"{rec['seconds']:.0f} s on {device}; wrote {args.out} ({2 * encoder.norm.normalized_shape[0]}-d feature); "
          f"use model.args.distill.teacher=pretrained model.args.distill.teacher_checkpoint={args.out}")
    return 0
