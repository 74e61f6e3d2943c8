"""Build the initial per-category confounder dictionaries of a model's front-door module(s) from the
training set.

Every annotated training instance (ground-truth masks, no augmentation) goes through the model in eval
mode; the feature each front-door module would enqueue (the mean token of its output or input, its
``dict_enqueue`` setting) is recorded. Per category, the dictionary then holds the first ``Q``
instances in data order (as released, notes/cleanpose.md §2.3) or, with ``--kmeans K``, ``K``
K-means prototypes (``K <= Q``; the remaining slots stay empty for the update rule to fill).

Examples::

    demopose build-dictionary cleanpose_synth_small --data DATA --out dicts/synth_small.pt --kmeans 16
    demopose train cleanpose_synth_small --data DATA model.args.causal.dict_init=dicts/synth_small.pt \\
        model.args.causal.update=momentum

The feature extractor is the model of the config, randomly initialised (``train.seed``) or loaded
from ``--checkpoint`` (e.g. a short warm-up run). The file is written atomically; training reads it
through ``model.args.causal.dict_init``.
"""

from __future__ import annotations

import argparse
import logging

HELP = "build a model's initial per-category confounder dictionaries from the training set (first-N or K-means)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="config file or packaged config name (a model with a front-door module)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides: key.sub=value")
    parser.add_argument("--data", help="dataset root (sets data.root)")
    parser.add_argument("--out", required=True, help="dictionary file to write (.pt)")
    parser.add_argument("--kmeans", type=int, metavar="K", default=None,
                        help="K-means prototypes per category (K <= the model's dict_size); default: the first "
                             "dict_size instances of each category, as released")
    parser.add_argument("--frames", type=int, metavar="N", default=0,
                        help="use at most N training frames, evenly spaced (0: all)")
    parser.add_argument("--checkpoint", help="model weights for the feature extractor (default: random init)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=None, help="init / point sampling / K-means seed "
                                                                "(default: train.seed)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--no-progress", action="store_true")


class _Seeded:
    """``dataset[(i, seed_i)]`` as a plain index -> sample mapping: a fixed point sample per instance."""

    def __init__(self, dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.dataset[(i, self.seed * 1_000_003 + i)]


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from demopose.data.frame import FrameSubset
    from demopose.data.instances import collate_instances
    from demopose.engine import load_config
    from demopose.engine.build import build_frames, build_instance_set, build_model_from_config, limit_frames
    from demopose.engine.checkpoint import load_weights
    from demopose.engine.dist import resolve_device
    from demopose.engine.trainer import seed_everything
    from demopose.models.causal import (
        build_dictionary,
        collect_dictionary_features,
        front_door_modules,
        save_dictionary_file,
    )

    overrides = list(args.overrides) + ([f"data.root={args.data}"] if args.data else [])
    cfg = load_config(args.config, overrides)
    seed = int(cfg.train.seed) if args.seed is None else int(args.seed)
    if args.kmeans is not None and args.kmeans < 1:
        raise ValueError(f"--kmeans: expected a positive number of prototypes, got {args.kmeans}")
    if cfg.data.get("sample", "instance") != "instance":
        raise ValueError("build-dictionary needs per-instance training samples (data.sample=instance)")
    device = resolve_device(args.device)
    seed_everything(seed)
    model = build_model_from_config(cfg)
    if args.checkpoint:
        load_weights(model, args.checkpoint, f"model {cfg.model.name!r} of {args.config} (--checkpoint)")
    modules = front_door_modules(model)
    if not modules:
        raise ValueError(f"model {cfg.model.name!r} of {args.config} has no front-door module "
                         "(set model.args.causal.enabled=true)")
    for name, m in modules.items():
        if args.kmeans is not None and args.kmeans > m.dictionary.size:
            raise ValueError(f"--kmeans {args.kmeans}: more prototypes than the dictionary of {name or 'the model'!r} "
                             f"holds per category ({m.dictionary.size}, the model's causal.dict_size)")

    frames = build_frames(cfg, str(cfg.data.train_subset))
    if args.frames:
        frames = FrameSubset(frames, limit_frames(len(frames), args.frames))
    dataset = build_instance_set(cfg, frames, model, train=False)  # what the model reads, no augmentation
    loader = DataLoader(_Seeded(dataset, seed), batch_size=args.batch_size, shuffle=False,
                        collate_fn=collate_instances)
    log.info("extracting features of %d instances (%d frames) with %s (%s)", len(dataset), len(frames),
             cfg.model.name, args.checkpoint or "random init")
    feats = collect_dictionary_features(model, tqdm(loader, desc="features", disable=args.no_progress), device)

    method = "kmeans" if args.kmeans is not None else "first"
    banks = {}
    for name, (f, cls) in feats.items():
        d = modules[name].dictionary
        size = args.kmeans if args.kmeans is not None else d.size
        bank, count = build_dictionary(f, cls, d.num_classes, size, method=method, seed=seed)
        full = torch.zeros(d.num_classes, d.size, bank.shape[2])
        full[:, :size] = bank
        banks[name] = (full, count)
        per_class = torch.bincount(cls, minlength=d.num_classes).tolist()
        print(f"{name or '(model)'}: {method} dictionary {tuple(full.shape)}; instances per class {per_class}; "
              f"entries per class {count.tolist()}")
    save_dictionary_file(args.out, banks, method=method, prototypes=args.kmeans, model=str(cfg.model.name),
                         config=str(args.config), checkpoint=args.checkpoint, data=str(cfg.data.root),
                         subset=str(cfg.data.train_subset), frames=len(frames), instances=len(dataset), seed=seed)
    print(f"wrote {args.out}; train with model.args.causal.dict_init={args.out}")
    return 0
