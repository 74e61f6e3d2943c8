"""The ``demopose`` command: one entry point, one module per subcommand.

Each subcommand module in :data:`COMMANDS` defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit code). Heavy imports happen inside ``run`` so ``--help`` stays fast.
A new subcommand is one module plus one line here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["main", "COMMANDS"]

COMMANDS: dict[str, str] = {
    "check-data": "demopose.cli.check_data",
    "show": "demopose.cli.show",
    "eval": "demopose.cli.eval",
    "synth": "demopose.cli.synth",
    "train": "demopose.cli.train",
    "test": "demopose.cli.test",
    "curves": "demopose.cli.curves",
    "bench": "demopose.cli.bench",
    "ablate": "demopose.cli.ablate",
    "predict": "demopose.cli.predict",
    "demo": "demopose.cli.demo",
    "build-dictionary": "demopose.cli.build_dictionary",
    "pretrain-teacher": "demopose.cli.pretrain_teacher",
    "export": "demopose.cli.export",
}


def build_parser() -> argparse.ArgumentParser:
    from demopose import __version__

    parser = argparse.ArgumentParser(
        prog="demopose",
        description="Category-level 9-DoF object pose estimation from RGB-D (DeMo-Pose, GPV-Pose, "
        "CleanPose): data, training, evaluation, inference.",
    )
    parser.add_argument("--version", action="version", version=f"demopose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__ or module.HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from demopose._env import set_thread_defaults

    set_thread_defaults()  # the program starts here: before any command imports torch or numpy
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Dotted overrides (key.sub=value) may come after options; argparse leaves those to us.
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as e:
        # User-facing failures (bad paths, malformed files) are reported without a traceback.
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"demopose {args.command}: error: {msg}", file=sys.stderr)
        if args.verbose:
            raise
        return 1
    except OSError as e:
        # The operating system said no (read-only folder, full disk, a file where a folder should be): one line
        # naming the file and what to do, no traceback.
        from demopose.io import describe_os_error

        print(f"demopose {args.command}: error: {describe_os_error(e)}", file=sys.stderr)
        if args.verbose:
            raise
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
