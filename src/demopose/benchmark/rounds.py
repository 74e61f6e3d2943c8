"""One result row from several interleaved runs (rounds) of the same benchmark on a shared machine."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["merge_runs"]


def merge_runs(runs: list[dict[str, Any]], medians: Sequence[str] = (), means: Sequence[str] = (),
               maxima: Sequence[str] = (), kept: Sequence[str] = (), digits: int | None = None) -> dict[str, Any]:
    """The first run's row with, over all runs, the median of each ``medians`` field, the mean of each ``means``
    field and the largest ``maxima`` field (a field that is a dict is combined key by key; a field missing or None
    in the first run stays as it is), rounded to ``digits``; ``rounds`` lists each run's ``kept`` fields. A single
    run is returned as it is."""
    if len(runs) == 1:
        return runs[0]

    def rounded(x: float) -> float:
        return round(x, digits) if digits is not None else x

    def combine(reduce: Callable[[list[float]], float], key: str) -> Any:
        first = runs[0][key]
        if isinstance(first, dict):
            return {s: rounded(reduce([r[key][s] for r in runs])) for s in first}
        return rounded(reduce([r[key] for r in runs]))

    row = dict(runs[0])
    for keys, reduce in ((medians, statistics.median), (means, statistics.fmean), (maxima, max)):
        for key in keys:
            if row.get(key) is not None:
                row[key] = combine(reduce, key)
    row["rounds"] = [{k: r.get(k) for k in kept} for r in runs]
    return row
