"""The compiled exact kNN kernel against the two torch forms, at the gpv backbone's sizes.

Usage::

    python benchmarks/knn_native.py [--threads 1,2] [--rounds 4]

Times :func:`demopose.layers.knn.knn_indices` (k = 10, self excluded) on random point sets of 1028 and 257 points
(the gpv backbone's first two levels), batches of 1 and 5: the compiled kernel (:mod:`demopose.native.knn`), the
torch matrix-multiply form with ``torch.topk`` (``exact_distances(False)``) and the torch exact difference form
with a stable sort (``exact_distances(True)``), alternately (``--rounds`` interleaved rounds; each round's figure
is the fastest of 10 runs; the file keeps the median over rounds, in ms per call). Whether the kernel's
neighbours equal the torch exact form's is recorded. Writes ``benchmarks/results/knn_native.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from demopose import set_thread_defaults

set_thread_defaults()  # before torch: demopose's OpenMP / BLAS thread defaults

import torch  # noqa: E402

OUT = Path(__file__).parent / "results" / "knn_native.json"


def main(argv: list[str] | None = None) -> int:
    from demopose.benchmark.micro import interleaved_ms, micro_parser, write_result

    args = micro_parser(__doc__, OUT).parse_args(argv)

    from demopose.layers.knn import exact_distances, knn_indices
    from demopose.native import knn as native_knn

    if not native_knn.available():
        raise SystemExit("the compiled kNN kernel is unavailable on this machine (see the warning above)")
    usable = native_knn.usable

    def torch_form(exact: bool):
        def run(points: torch.Tensor) -> torch.Tensor:
            native_knn.usable = lambda *a: False
            try:
                with exact_distances(exact):
                    return knn_indices(points, k=10, exclude_self=True)
            finally:
                native_knn.usable = usable
        return run

    forms = {"native": lambda p: knn_indices(p, k=10, exclude_self=True),
             "torch matmul + topk": torch_form(False), "torch exact + stable sort": torch_form(True)}
    torch.manual_seed(0)
    cases = {(b, n): torch.randn(b, n, 3) * 0.1 for b in (1, 5) for n in (1028, 257)}
    equal = all(torch.equal(forms["native"](p), forms["torch exact + stable sort"](p)) for p in cases.values())
    load = os.getloadavg()
    fns = {(f, c): (lambda fn=fn, p=points: fn(p)) for f, fn in forms.items() for c, points in cases.items()}
    medians = interleaved_ms(fns, args.threads, args.rounds, runs=10)
    results = []
    for threads, ms in medians.items():
        for (f, (b, n)), v in ms.items():
            row = {"threads": threads, "form": f, "batch": b, "points": n, "ms": round(v, 3)}
            results.append(row)
            print(json.dumps(row), flush=True)
    write_result(args.out, "kNN (k = 10, self excluded): compiled exact kernel vs torch forms",
                 "benchmarks/knn_native.py", argv, load, results, native_equals_torch_exact=equal)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
