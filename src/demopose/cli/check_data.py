"""Validate a dataset folder and list every problem with its file.

PATH may be a NOCS dataset root (with Real/, CAMERA/, gts/, ...), a NOCS split or scene folder, a
single NOCS frame (prefix like .../0000 or its _color.png), or a HouseCat6D root or scene folder.
Every problem is printed as `ERROR|WARNING <file>: <what>`; a summary follows. The exit code is 1
when there is at least one error (or any warning with --strict), else 0.
"""

from __future__ import annotations

import argparse

HELP = "validate a dataset folder (NOCS CAMERA/Real, HouseCat6D) and list every problem with its file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="dataset root, split/scene folder or frame")
    parser.add_argument("--categories", default=None,
                        help="category table name (nocs_real, nocs_camera, housecat6d); default by layout")
    parser.add_argument("--max-frames", type=int, default=None, help="check only the first N frames")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.add_argument("--quiet", action="store_true", help="print errors only, not warnings")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from demopose.categories import get_table
    from demopose.data.check import Problem, check_dataset

    table = get_table(args.categories) if args.categories else None

    def show(p: Problem) -> None:
        if args.quiet and p.severity != "error":
            return
        tqdm.write(str(p))

    report = check_dataset(args.path, categories=table, progress=not args.no_progress,
                           max_frames=args.max_frames, on_problem=show)
    print(report.summary())
    failed = not report.ok or (args.strict and report.warnings)
    print("FAILED" if failed else "OK")
    return 1 if failed else 0
