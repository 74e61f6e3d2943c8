"""Shared parts of the micro-benchmarks in ``benchmarks/`` (one kernel or layer, several variants, interleaved).

Each script times its variants alternately over ``--rounds`` rounds at each of ``--threads`` thread counts, takes
the fastest of a few runs per round (:func:`fastest_ms`: the least disturbed by other jobs on a shared machine)
and the median over rounds (:func:`interleaved_ms`), and writes one JSON file with its command, date, machine and
load average (:func:`write_result`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["fastest_ms", "interleaved_ms", "micro_parser", "write_result"]

K = TypeVar("K", bound=Hashable)


def _thread_counts(text: str) -> list[int]:
    try:
        counts = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated thread counts, got {text!r}") from e
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive thread counts, got {text!r}")
    return counts


def micro_parser(doc: str | None, default_out: Path, rounds: int = 4) -> argparse.ArgumentParser:
    """The common options: ``--threads`` (comma separated, parsed to a list of ints; default ``1,2``), ``--rounds``,
    ``--out``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=_thread_counts, default=[1, 2],
                    help="torch thread counts, comma separated (default 1,2)")
    ap.add_argument("--rounds", type=int, default=rounds, help=f"interleaved rounds (default {rounds})")
    ap.add_argument("--out", type=Path, default=default_out, help=f"result JSON (default {default_out})")
    return ap


def fastest_ms(fn: Callable[[], Any], runs: int = 8, warmup: int = 2) -> float:
    """The fastest of ``runs`` wall-clock timings of ``fn()`` in ms, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def interleaved_ms(fns: Mapping[K, Callable[[], Any]], threads: Sequence[int], rounds: int,
                   runs: int = 8) -> dict[int, dict[K, float]]:
    """``{threads: {key: ms}}``: at each thread count, every ``fns[key]`` timed once per round in turn
    (:func:`fastest_ms` of ``runs``), the median over ``rounds``."""
    import torch

    out: dict[int, dict[K, float]] = {}
    for t in threads:
        torch.set_num_threads(t)
        times: dict[K, list[float]] = {k: [] for k in fns}
        for _ in range(rounds):
            for k, fn in fns.items():
                times[k].append(fastest_ms(fn, runs))
        out[t] = {k: statistics.median(v) for k, v in times.items()}
    return out


def write_result(out: Path, benchmark: str, script: str, argv: Sequence[str] | None, load_before: Sequence[float],
                 results: list[dict[str, Any]], **extra: Any) -> None:
    """Write the result file (atomic): ``benchmark``, the ``command`` (``python <script> <argv>``), date, machine,
    load average before and now, ``extra`` fields and ``results``; print where."""
    from demopose.benchmark.latency import machine_description
    from demopose.io import write_json_atomic

    given = list(argv) if argv is not None else sys.argv[1:]
    doc = {"benchmark": benchmark, "command": " ".join(["python", script, *given]).strip(),
           "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(), **extra,
           "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()), "results": results}
    write_json_atomic(out, doc)
    print(f"wrote {out}")
