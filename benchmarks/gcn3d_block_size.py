"""The 3D-GC layers' CPU block size: gpv backbone time for several block sizes, at 1 and 2 threads.

Usage::

    python benchmarks/gcn3d_block_size.py [--threads 1,2] [--rounds 4]

On CPU, :mod:`demopose.layers.gcn3d` computes its ``(points, k, S·C)`` intermediates in blocks of at most
``CPU_BLOCK_ROWS`` points and ``CPU_BLOCK_ELEMENTS`` values. This times the ``gpv`` backbone
(``GPVBackbone.levels``: the five 3D-GC layers, the two poolings and their neighbour searches; eval,
``torch.no_grad``) on random instances of 1028 points, batches of 1 and 5, for each block setting in turn
(``--rounds`` interleaved rounds; each round's figure is the fastest of 8 runs, the file keeps the median over
rounds, in ms per instance). The defaults in ``gcn3d.py`` come from this file. The compiled kernel
(:mod:`demopose.native.gcn3d`, which needs no blocks) is switched off here: this times the torch path, which
runs where the kernel does not (training, no C compiler). Writes ``benchmarks/results/gcn3d_block_size.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import demopose  # noqa: F401  (before torch: its OpenMP / BLAS thread defaults)

# isort: split
import torch

OUT = Path(__file__).parent / "results" / "gcn3d_block_size.json"
SETTINGS = ((1 << 18, 256), (1 << 19, 512), (1 << 20, 1024))  # (CPU_BLOCK_ELEMENTS, CPU_BLOCK_ROWS)


def main(argv: list[str] | None = None) -> int:
    from demopose.benchmark.micro import interleaved_ms, micro_parser, write_result

    args = micro_parser(__doc__, OUT).parse_args(argv)

    from demopose.layers import gcn3d
    from demopose.models import build_model
    from demopose.native import gcn3d as native_gcn3d

    native_gcn3d.usable = lambda *tensors: False  # the torch path, whose blocks this measures
    torch.manual_seed(0)
    model = build_model("gpv").eval()
    batches = {b: torch.randn(b, 1028, 3) * 0.1 for b in (1, 5)}
    load = os.getloadavg()

    def levels(setting: tuple[int, int], points: torch.Tensor):
        gcn3d.CPU_BLOCK_ELEMENTS, gcn3d.CPU_BLOCK_ROWS = setting
        return model.backbone.levels(points)

    fns = {(s, b): (lambda s=s, p=p: levels(s, p)) for s in SETTINGS for b, p in batches.items()}
    with torch.no_grad():
        medians = interleaved_ms(fns, args.threads, args.rounds)
    results = []
    for threads, ms in medians.items():
        for s in SETTINGS:
            row = {"threads": threads, "block_elements": s[0], "block_rows": s[1],
                   "ms_per_instance": {str(b): round(ms[(s, b)] / b, 2) for b in batches}}
            results.append(row)
            print(json.dumps(row), flush=True)
    write_result(args.out, "gpv backbone (GPVBackbone.levels) per instance vs 3D-GC CPU block size",
                 "benchmarks/gcn3d_block_size.py", argv, load, results, points=1028)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
