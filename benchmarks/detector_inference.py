"""The monocular detector at inference: plain modules against the BatchNorm-folded NHWC copy, on CPU.

Usage::

    python benchmarks/detector_inference.py [--threads 1,2] [--rounds 4]

Times ``MonoDetector`` (``mono``: GhostNet 1.0x + Ghost-PAN + GFL head at 416², and ``mono_small`` at 320²;
untrained weights, BatchNorm statistics randomised) on one letterboxed image, eval and ``torch.no_grad``:
``feature_map`` (backbone + neck as written) and ``inference_feature_map`` (the folded copy of
:func:`demopose.layers.bn_folding.fold_conv_bn`, NHWC), then the head on top of each (``plain head`` /
``folded head``), alternately (``--rounds`` interleaved rounds; each round's figure is the fastest of 8
runs, the file keeps the median over rounds, ms per image). The largest relative difference between the
two paths' PAN levels is recorded. Writes ``benchmarks/results/detector_inference.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from demopose import set_thread_defaults

set_thread_defaults()  # before torch: demopose's OpenMP / BLAS thread defaults

import torch  # noqa: E402

OUT = Path(__file__).parent / "results" / "detector_inference.json"


def main(argv: list[str] | None = None) -> int:
    from demopose.benchmark.micro import interleaved_ms, micro_parser, write_result

    ap = micro_parser(__doc__, OUT)
    ap.add_argument("--models", default="mono,mono_small", help="detector variants (default mono,mono_small)")
    args = ap.parse_args(argv)

    from demopose.models import build_model

    torch.manual_seed(0)
    load = os.getloadavg()
    results, diffs = [], {}
    with torch.no_grad():
        for name in args.models.split(","):
            model = build_model(name).eval()
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):  # trained-like statistics, so folding has work to do
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
            W, H = model.config.input_size
            image = torch.randn(1, 3, H, W)
            plain, folded = model.feature_map(image), model.inference_feature_map(image)
            diffs[name] = max(float((a - b).abs().max() / a.abs().max()) for a, b in zip(plain, folded))
            paths = {
                "plain": lambda m=model, x=image: m.feature_map(x),
                "folded": lambda m=model, x=image: m.inference_feature_map(x),
                "plain + head": lambda m=model, x=image: m.head(m.feature_map(x)),
                "folded + head": lambda m=model, x=image: m._folded(x)[1](m.inference_feature_map(x)),
            }
            for threads, ms in interleaved_ms(paths, args.threads, args.rounds).items():
                row = {"model": name, "input_size": [W, H], "threads": threads,
                       "ms": {p: round(v, 2) for p, v in ms.items()}}
                results.append(row)
                print(json.dumps(row), flush=True)
    write_result(args.out, "monocular detector per image: plain vs BatchNorm-folded NHWC copy (eval, no_grad)",
                 "benchmarks/detector_inference.py", argv, load, results, max_relative_diff=diffs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
