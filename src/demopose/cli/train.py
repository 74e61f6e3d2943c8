"""Train a pose model from a YAML config, on one process or under torchrun (DistributedDataParallel).

Examples::

    demopose train gpv_synth_small --data DATA              # a packaged config, one process
    demopose train my.yaml train.max_steps=500 model.name=hs_pose_small
    torchrun --nproc_per_node 2 -m demopose train gpv_real275 --data NOCS

The run directory (``output.dir`` or ``--out``) receives ``config.yaml`` (fully resolved),
``last.pt`` (atomic, every ``train.checkpoint_every`` steps), ``best.pt`` (by ``--best-key``),
``metrics.jsonl`` and TensorBoard logs (with the ``logging`` extra). Re-running the same command
resumes from ``last.pt`` exactly where it stopped; ``--no-resume`` starts over.

Resuming checks the settings against those the checkpoint was trained with: run length and logistics
(``train.max_steps``, evaluation / checkpoint / log cadence, ``train.num_workers``, ``train.precision``,
``data.root``, the device, ``eval.*``) may change; any other change (model, data subsets, optimiser,
schedule, batch, seed ...) is refused unless ``--allow-changed-config``. Every change is logged and recorded
in ``resumes.jsonl`` and ``config.yaml``. A damaged ``last.pt`` falls back to ``last.prev.pt`` / ``best.pt``
(with a warning); partial files of interrupted checkpoint writes are removed.

Training validates on ``data.val_subset`` (``best.pt``, the curves), a split of its own in the synthetic presets
(``real_val``: ``demopose synth DATA --frames 50 --style real --split val --seed 3``), never the split
``demopose test`` scores (``data.test_subset``). A missing validation split stops the command before anything is
built, naming the split and the command that makes it; with ``train.eval_every=0`` the run goes on without
validation (a warning).
"""

from __future__ import annotations

import argparse
import logging

HELP = "train a model from a YAML config (resumable; torchrun for several processes/GPUs)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="config file or packaged config name (gpv_real275, gpv_synth_small, ...)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides: key.sub=value")
    parser.add_argument("--data", help="dataset root (sets data.root)")
    parser.add_argument("--out", help="run directory (sets output.dir)")
    parser.add_argument("--no-resume", action="store_true", help="ignore an existing last.pt in the run directory")
    parser.add_argument("--allow-changed-config", action="store_true",
                        help="resume even though settings that change the run's meaning (model, data, optimiser, "
                             "schedule, batch, seed) differ from the checkpoint's; the change is recorded")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--best-key", default="nocs/mean/5deg5cm", help="validation metric selecting best.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--sync-bn", action="store_true",
                        help="several processes: BatchNorm statistics over all ranks' batches (sets train.sync_bn)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch
    from omegaconf import OmegaConf

    from demopose.categories import get_table
    from demopose.engine import Trainer, TrainerConfig, default_hooks, dist, load_config, save_config
    from demopose.engine.build import (
        build_collate,
        build_mask_source,
        build_model_from_config,
        build_optim,
        build_train_set,
        limit_frames,
    )
    from demopose.engine.precise_bn import PreciseBNHook, wants_precise_bn
    from demopose.engine.trainer import seed_everything
    from demopose.evaluation import NOCSEvaluator
    from demopose.pipeline import run_inference

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.root={args.data}")
    if args.out:
        overrides.append(f"output.dir={args.out}")
    cfg = load_config(args.config, overrides)
    if args.sync_bn:
        OmegaConf.update(cfg, "train.sync_bn", True, merge=True)
    device = dist.init_distributed(args.device)
    try:
        from demopose.engine.precision import resolve_precision

        # the resolved precision (auto -> fp32 | bf16) is what config.yaml and every checkpoint record
        OmegaConf.update(cfg, "train.precision", resolve_precision(cfg.train.get("precision", "auto"), device),
                         merge=True)
        run_dir = Path(str(cfg.output.dir))
        val_frames = validation_frames(cfg)  # before anything is built: a missing split fails at once
        resume_from = None if args.no_resume else _resume_point(run_dir, cfg, device, args.allow_changed_config)
        seed_everything(int(cfg.train.seed))  # identical init on every rank; the sampler shards the data
        model = build_model_from_config(cfg)
        train_set = build_train_set(cfg, model)
        init_state = None
        if cfg.train.get("init_from"):  # before the optimiser and the resume (a run's own last.pt wins)
            from demopose.engine.checkpoint import load_checkpoint
            from demopose.engine.warm_start import warm_start

            init_state = load_checkpoint(str(cfg.train.init_from))
            warm_start(model, str(cfg.train.init_from), state=init_state)
        opt, sched = build_optim(cfg, model)
        n_val = len(val_frames) if val_frames is not None else 0
        val_idx = limit_frames(n_val, int(cfg.train.get("val_frames", 0)))
        shard = val_idx[dist.rank():: dist.world_size()]
        mask_source = build_mask_source(cfg)
        table = get_table(cfg.data.categories)

        def evaluate(trainer: Trainer) -> dict[str, float]:
            ev = NOCSEvaluator(table, iou_mode=str(cfg.eval.iou))
            return run_inference(trainer.raw_model, val_frames, mask_source, ev, n_points=int(cfg.data.n_points),
                                 seed=int(cfg.eval.seed), device=device, progress=False, indices=shard,
                                 gather=dist.gather_evaluator)

        hooks = default_hooks(int(cfg.train.checkpoint_every), int(cfg.train.log_every),
                              evaluate if val_frames is not None else None,
                              int(cfg.train.eval_every), best_key=args.best_key, progress=not args.no_progress)
        collate = build_collate(train_set)
        if wants_precise_bn(cfg.train.get("precise_bn", "auto"), str(cfg.train.precision), model):
            # first: the evaluation and the final checkpoint see statistics that fit fp32 inference
            hooks.insert(0, PreciseBNHook(train_set, collate,
                                          batches=int(cfg.train.get("precise_bn_batches", 32)),
                                          every=int(cfg.train.eval_every) if val_frames is not None else 0))
        tcfg = TrainerConfig(max_steps=int(cfg.train.max_steps), batch_size=int(cfg.train.batch_size),
                             num_workers=int(cfg.train.num_workers), grad_clip=cfg.train.grad_clip,
                             seed=int(cfg.train.seed), sync_bn=bool(cfg.train.get("sync_bn", False)),
                             precision=str(cfg.train.precision))
        trainer = Trainer(model, opt, sched, train_set, collate, tcfg, run_dir, hooks, device,
                          config=OmegaConf.to_container(cfg, resolve=True))
        if dist.is_main():
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, run_dir / "config.yaml")
        if resume_from is not None:
            trainer.resume(resume_from.path, resume_from.state)
        elif cfg.train.get("start_step") not in (None, 0):
            trainer.start_at(_start_step(cfg, init_state))
        unit = "frames" if cfg.data.get("sample", "instance") == "frame" else "instances"
        log.info("training %s on %d %s for %d steps (%d process(es), %s, %s) -> %s", cfg.model.name,
                 len(train_set), unit, tcfg.max_steps, dist.world_size(), device, tcfg.precision, run_dir)
        torch.set_float32_matmul_precision("high")
        trainer.train()
        if dist.is_main():
            final = {k: v for k, v in trainer.records.items() if k.startswith("val/") and "/mean/" in k}
            for k, v in sorted(final.items()):
                print(f"{k}: {100 * v:.1f}")
            print(f"checkpoint: {run_dir / 'last.pt'}")
    finally:
        dist.cleanup()
    return 0


def validation_frames(cfg):
    """The frames of ``data.val_subset``, the split training validates on (best.pt, curves), never the test split
    of the synthetic presets (``data.test_subset``); None when that split does not exist and ``train.eval_every``
    is 0 (training then runs without validation, with a warning).

    Raises:
        FileNotFoundError: the split does not exist and ``train.eval_every`` > 0; the message names the split and
            how to make it (for generated data, the ``demopose synth ... --split val`` command).
    """
    from demopose.engine.build import build_frames, require_data_root

    root = require_data_root(cfg)  # a missing data.root is named as such, not as a missing split
    subset = str(cfg.data.val_subset)
    try:
        return build_frames(cfg, subset)
    except FileNotFoundError as e:
        style, _, split = subset.partition("_")
        make = ""
        if str(cfg.data.get("format", "nocs")) == "nocs" and style in ("real", "camera") and split:
            make = (f"; for generated data make it with `demopose synth {root} --frames 50 --style {style} "
                    f"--split {split} --seed 3` (a seed no other split uses)")
        if int(cfg.train.eval_every) > 0:
            raise FileNotFoundError(
                f"data.val_subset={subset!r}: the validation split is missing ({e}){make}; or set data.val_subset "
                f"to a split of {root} that is not the test split, or train.eval_every=0 to train without "
                f"validation") from None
        log.warning("data.val_subset=%r: the validation split is missing (%s); training without validation "
                    "(train.eval_every=0)%s", subset, e, make)
        return None


def _resume_point(run_dir, cfg, device, allow_changed: bool):
    """The checkpoint to resume from (None: a new run), after checking its settings against ``cfg``; changes
    are logged and appended to ``run_dir/resumes.jsonl`` (rank 0)."""
    import json
    import time

    from omegaconf import OmegaConf

    from demopose.engine import dist
    from demopose.engine.checkpoint import check_resume_config, find_resume_checkpoint

    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"output.dir {run_dir}: is a file, not a run folder (choose another --out)")
    found = find_resume_checkpoint(run_dir, map_location=device, remove_partials=dist.is_main())
    if found is None:
        return None
    changes = check_resume_config(found.state.get("config"), OmegaConf.to_container(cfg, resolve=True),
                                  found.path, allow_changed)
    for k, c in changes.items():
        log.warning("resume: %s changed from %r to %r (%s)", k, c["was"], c["now"],
                    "allowed by --allow-changed-config" if c["kind"] == "meaning" else "run length / logistics")
    if dist.is_main() and (changes or found.skipped):
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "checkpoint": str(found.path), "step": found.step,
                  "changed": changes, "skipped": [[str(p), why] for p, why in found.skipped]}
        with open(run_dir / "resumes.jsonl", "a") as f:
            f.write(json.dumps(record, default=str) + "\n")
    return found


def _start_step(cfg, init_state: dict | None) -> int:
    """``train.start_step``: a step number, or ``init``: the step recorded in ``train.init_from``'s checkpoint
    (``init_state``, its loaded content)."""
    value = cfg.train.start_step
    if str(value) != "init":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"train.start_step: expected a step number or 'init', got {value!r}") from None
    if init_state is None:
        raise ValueError("train.start_step=init: needs train.init_from (the checkpoint whose step to continue from)")
    if "step" not in init_state:
        raise ValueError(f"train.start_step=init: {cfg.train.init_from} records no training step; give a number")
    return int(init_state["step"])
