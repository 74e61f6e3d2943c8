"""Copy a run's weights-only checkpoint to where it is shipped, replacing the machine-specific values of its stored
config (the run's absolute data, output and warm-start paths) by portable ones; the weights are copied unchanged.

Usage::

    python benchmarks/ship_checkpoint.py SRC DST [key.sub=value ...]
    # e.g. the bundled DeMo-Pose (docs/checkpoints.md):
    python benchmarks/ship_checkpoint.py RUN/model_final.pt src/demopose/assets/demopose_synth_small.pt \\
        data.root=DATA output.dir=RUN train.init_from=checkpoints/gpv_synth_small.pt \\
        model.args.mono_checkpoint=checkpoints/mono_synth_small.pt

A key must already exist in the stored config (a typo is an error). ``asset:NAME`` is the portable form of a file
shipped in the package (the CleanPose distillation teacher: ``model.args.distill.teacher_checkpoint``,
``demopose.models.distill.resolve_teacher_file``). The copy is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from demopose.io import atomic_path  # noqa: E402


def set_dotted(config: dict, key: str, value: str) -> None:
    """``config[k1][k2]... = value`` for ``key = "k1.k2..."``; every level must exist."""
    node = config
    *parents, leaf = key.split(".")
    for k in parents:
        if not isinstance(node.get(k), dict):
            raise KeyError(f"{key}: the stored config has no group {k!r}")
        node = node[k]
    if leaf not in node:
        raise KeyError(f"{key}: the stored config has no key {leaf!r} (known: {sorted(node)})")
    node[leaf] = value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="a run's model_final.pt")
    ap.add_argument("dst", help="where the file is shipped")
    ap.add_argument("sets", nargs="*", help="key.sub=value: a stored config value to replace")
    args = ap.parse_args(argv)
    state = torch.load(args.src, map_location="cpu", weights_only=False)
    if "config" not in state:
        raise SystemExit(f"{args.src}: no stored config (not a demopose checkpoint?)")
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected key.sub=value")
        set_dotted(state["config"], key.strip(), value.strip())
    with atomic_path(args.dst) as tmp:
        torch.save(state, tmp)
    print(f"wrote {args.dst} ({len(args.sets)} config value(s) replaced)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
