"""The compiled 3D-GC kernel against the torch path: gpv backbone time per instance, at 1 and 2 threads.

Usage::

    python benchmarks/gcn3d_native.py [--threads 1,2] [--rounds 4]

Times the ``gpv`` backbone (``GPVBackbone.levels``: the five 3D-GC layers, the two poolings and their neighbour
searches; eval, ``torch.no_grad``) on random instances of 1028 points, batches of 1 and 5, with the compiled
neighbour aggregation (:mod:`demopose.native.gcn3d`) and with the torch path (cache-sized blocks of
``(points, k, S·C)`` intermediates), alternately (``--rounds`` interleaved rounds; each round's figure is the
fastest of 8 runs; the file keeps the median over rounds, in ms per instance). Both compute the same outputs;
the largest difference is recorded. Writes ``benchmarks/results/gcn3d_native.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from demopose import set_thread_defaults

set_thread_defaults()  # before torch: demopose's OpenMP / BLAS thread defaults

import torch  # noqa: E402

OUT = Path(__file__).parent / "results" / "gcn3d_native.json"


def main(argv: list[str] | None = None) -> int:
    from demopose.benchmark.micro import interleaved_ms, micro_parser, write_result

    args = micro_parser(__doc__, OUT).parse_args(argv)

    from demopose.models import build_model
    from demopose.native import gcn3d as native_gcn3d

    if not native_gcn3d.available():
        raise SystemExit("the compiled 3D-GC kernel is unavailable on this machine (see the warning above)")
    usable = native_gcn3d.usable
    paths = {"native": usable, "torch": lambda *tensors: False}
    torch.manual_seed(0)
    model = build_model("gpv").eval()
    batches = {b: torch.randn(b, 1028, 3) * 0.1 for b in (1, 5)}
    load = os.getloadavg()

    def levels(path: str, points: torch.Tensor) -> list[torch.Tensor]:
        native_gcn3d.usable = paths[path]
        out = model.backbone.levels(points, generator=torch.Generator().manual_seed(1))
        return [out.fm_0, out.fm_1, out.fm_2, out.fm_3, out.fm_4]

    fns = {(name, b): (lambda n=name, p=p: levels(n, p)) for name in paths for b, p in batches.items()}
    try:
        with torch.no_grad():
            native, plain = levels("native", batches[5]), levels("torch", batches[5])  # same outputs
            max_diff = max(float((a - b).abs().max()) for a, b in zip(native, plain))
            medians = interleaved_ms(fns, args.threads, args.rounds)
    finally:
        native_gcn3d.usable = usable
    results = []
    for threads, ms in medians.items():
        for name in paths:
            row = {"threads": threads, "path": name,
                   "ms_per_instance": {str(b): round(ms[(name, b)] / b, 2) for b in batches}}
            results.append(row)
            print(json.dumps(row), flush=True)
    write_result(args.out, "gpv backbone (GPVBackbone.levels) per instance: compiled 3D-GC kernel vs torch path",
                 "benchmarks/gcn3d_native.py", argv, load, results, points=1028, max_abs_diff=max_diff)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
