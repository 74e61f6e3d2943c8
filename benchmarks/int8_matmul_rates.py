"""onnxruntime's matrix-product rates on this CPU: float32 against the int8 kernels the quantiser can produce.

Usage::

    python benchmarks/int8_matmul_rates.py [--threads 1] [--shape 5140,1286,1024]

One product of the size of gpv's widest head layer for a frame of five instances (``M = 5 · 1028`` points,
``K = 1286`` inputs, ``N = 1024`` outputs; ``--shape M,K,N``), each as a one-node ONNX graph run by
onnxruntime's CPU provider: ``MatMul`` float32, ``MatMulInteger`` with uint8 × int8 and int8 × int8 inputs, and
``QLinearMatMul`` uint8 × int8 with per-tensor and per-column weight scales (the fused form of a QDQ graph).
Median of ``--repeats`` runs after 2 warm-up runs; rate = 2·M·K·N / time. ``demopose.export.quantize`` picks
uint8 activations from this file. Writes ``benchmarks/results/int8_matmul_rates.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "results" / "int8_matmul_rates.json"


def _session(graph, threads: int):
    import onnxruntime as ort
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _time(session, feed: dict[str, np.ndarray], repeats: int) -> float:
    for _ in range(2):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    ap.add_argument("--shape", default="5140,1286,1024", help="M,K,N of the product (default 5140,1286,1024)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON (default {OUT})")
    args = ap.parse_args(argv)
    M, K, N = (int(v) for v in args.shape.split(","))

    import onnxruntime
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    from demopose.benchmark.latency import machine_description
    from demopose.io import write_json_atomic

    rng = np.random.default_rng(0)
    x_f = rng.standard_normal((M, K)).astype(np.float32)
    x_u8 = rng.integers(0, 256, (M, K)).astype(np.uint8)
    x_s8 = rng.integers(-127, 128, (M, K)).astype(np.int8)
    w_f = nh.from_array(rng.standard_normal((K, N)).astype(np.float32), "W")
    w_s8 = nh.from_array(rng.integers(-127, 128, (K, N)).astype(np.int8), "W")

    def graph(nodes, x_type, out_type, inits):
        return h.make_graph(nodes, "product", [h.make_tensor_value_info("x", x_type, [M, K])],
                            [h.make_tensor_value_info("y", out_type, None)], inits)

    def qlinear(per_column: bool):
        shape = (N,) if per_column else ()
        inits = [w_s8, nh.from_array(np.array(0.02, np.float32), "xs"), nh.from_array(np.array(128, np.uint8), "xz"),
                 nh.from_array(np.full(shape, 0.01, np.float32), "ws"), nh.from_array(np.zeros(shape, np.int8), "wz"),
                 nh.from_array(np.array(0.05, np.float32), "ys"), nh.from_array(np.array(128, np.uint8), "yz")]
        node = h.make_node("QLinearMatMul", ["x", "xs", "xz", "W", "ws", "wz", "ys", "yz"], ["y"])
        return graph([node], T.UINT8, T.UINT8, inits)

    cases = {
        "MatMul float32": (graph([h.make_node("MatMul", ["x", "W"], ["y"])], T.FLOAT, T.FLOAT, [w_f]), x_f),
        "MatMulInteger uint8 x int8": (graph([h.make_node("MatMulInteger", ["x", "W"], ["y"])], T.UINT8, T.INT32,
                                             [w_s8]), x_u8),
        "MatMulInteger int8 x int8": (graph([h.make_node("MatMulInteger", ["x", "W"], ["y"])], T.INT8, T.INT32,
                                            [w_s8]), x_s8),
        "QLinearMatMul uint8 x int8, per-tensor scale": (qlinear(False), x_u8),
        "QLinearMatMul uint8 x int8, per-column scale": (qlinear(True), x_u8),
    }
    load = list(os.getloadavg())
    rows = {}
    for name, (g, x) in cases.items():
        t = _time(_session(g, args.threads), {"x": x}, args.repeats)
        rows[name] = {"ms": round(t * 1000, 2), "gop_per_s": round(2 * M * K * N / t / 1e9, 1)}
        print(f"{name:48s} {rows[name]['ms']:8.1f} ms  {rows[name]['gop_per_s']:7.1f} GOP/s", flush=True)
    given = argv if argv is not None else sys.argv[1:]
    result = {"benchmark": "onnxruntime CPU matrix products, float32 vs int8 kernels",
              "command": "python benchmarks/int8_matmul_rates.py " + " ".join(given),
              "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": machine_description() | {"onnxruntime": onnxruntime.__version__},
              "threads": args.threads, "shape_mkn": [M, K, N], "load_average_before": load,
              "load_average_after": list(os.getloadavg()), "results": rows}
    write_json_atomic(args.out, result)
    print(json.dumps({k: v["gop_per_s"] for k, v in rows.items()}))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
