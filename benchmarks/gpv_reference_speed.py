"""Our ``gpv`` network against the published GPV-Pose network, timed side by side (issue #9, part 4).

Usage::

    python benchmarks/gpv_reference_speed.py --reference /path/to/GPV_Pose [--threads 2] [--batches 1,5]

``--reference`` is a local checkout of lolrudy/GPV_Pose (Di et al., CVPR 2022); nothing of it is copied
here. Its ``PoseNet9D`` (``network/fs_net_repo/PoseNet9D.py`` with ``FaceRecon``, ``Rot_green``,
``Rot_red``, ``Pose_Ts`` and ``gcn3d``) is imported from the checkout as published. That import chain
is pure PyTorch (no custom CUDA operators); its only foreign dependency is ``absl`` (flags), which,
when it is not installed, is replaced at import time by a minimal flags registry that keeps each
flag's default value (the architecture flags: ``gcn_n_num`` 10, ``gcn_sup_num`` 7, ``obj_c`` 6,
``feat_c_R`` 1286, ``feat_c_ts`` 1289, ``feat_face`` 768, ``face_recon_c`` 30).

Same architecture, checked: our randomly initialised ``gpv`` weights are copied into the reference
(state-dict key mapping below, Conv1d kernels get their length-1 axis) and both networks run on the
same points with the same random-pooling subsets; the largest output difference is recorded
(``parity_max_abs_diff``; it must be below 1e-4 or the script stops).

Timing, in one process at one thread count, alternating the two networks every repeat so that both
see the same machine load: ours in eval mode under ``torch.no_grad`` (as ``demopose test`` runs it),
the reference in eval mode under ``torch.no_grad`` (headline ratio) and also as its
``evaluation/evaluate.py`` runs it (eval mode, autograd on: ``reference_as_published``). A forward
takes a batch of ``B`` instances of ``--points`` points (a frame's instances are batched at inference);
figures are the median over ``--repeats`` runs divided by ``B`` (wall clock; the process CPU time is
recorded too, as it is less sensitive to other jobs on a shared machine). The matrix-multiply rate of the
machine (fp32 ``torch.mm`` at the same thread count, sizes of the heads' products) and the
multiply-add count of each network (``torch.utils.flop_counter``, matrix products only) are recorded
too, with the load average before and after. Writes ``benchmarks/results/gpv_reference_speed.json``.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

from demopose import set_thread_defaults

set_thread_defaults()  # before torch: demopose's OpenMP / BLAS thread defaults apply to both networks

import torch  # noqa: E402

from demopose.benchmark.latency import machine_description  # noqa: E402
from demopose.io import write_json_atomic  # noqa: E402
from demopose.models import build_model  # noqa: E402

OUT = Path(__file__).parent / "results" / "gpv_reference_speed.json"


# --------------------------------------------------------------------------------------------------
# the reference network
# --------------------------------------------------------------------------------------------------


def _install_absl_shim() -> bool:
    """Make ``import absl.flags`` / ``absl.app`` work without absl-py (returns True if the shim is used).

    A pure-Python stand-in for absl's flags registry: ``flags.DEFINE_*(name, default, help)`` stores the
    default as an attribute of ``flags.FLAGS``; that is all the reference's network modules use
    (they read ``FLAGS.<name>`` when they are built). ``app.run(main)`` just calls ``main``.
    """
    try:
        import absl.flags  # noqa: F401

        return False
    except ImportError:
        pass
    absl = types.ModuleType("absl")
    flags = types.ModuleType("absl.flags")
    app = types.ModuleType("absl.app")
    flags.FLAGS = types.SimpleNamespace()

    def define(name: str, default: Any, *args: Any, **kwargs: Any) -> None:
        setattr(flags.FLAGS, name, default)

    for kind in ("integer", "float", "string", "boolean", "bool", "list", "enum", "multi_string"):
        setattr(flags, f"DEFINE_{kind}", define)
    app.run = lambda main, argv=None: main(sys.argv if argv is None else argv)
    absl.flags, absl.app = flags, app
    sys.modules.update({"absl": absl, "absl.flags": flags, "absl.app": app})
    return True


def load_reference(checkout: Path) -> tuple[type, bool]:
    """``PoseNet9D`` class from a GPV_Pose checkout, and whether the absl shim was needed."""
    if not (checkout / "network" / "fs_net_repo" / "PoseNet9D.py").is_file():
        raise SystemExit(f"--reference {checkout}: expected a lolrudy/GPV_Pose checkout "
                         "(network/fs_net_repo/PoseNet9D.py not found)")
    shim = _install_absl_shim()
    sys.path.insert(0, str(checkout))
    try:
        importlib.import_module("config.config")  # defines the flags (architecture sizes)
        if not shim:  # real absl: flags must be marked parsed before they are read
            import absl.flags

            absl.flags.FLAGS.mark_as_parsed()
        posenet = importlib.import_module("network.fs_net_repo.PoseNet9D")
    finally:
        sys.path.remove(str(checkout))
    return posenet.PoseNet9D, shim


def reference_state_dict(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our ``gpv`` state dict under the reference ``PoseNet9D`` key names (1x1 Conv1d kernels get their
    length-1 axis)."""
    out: dict[str, torch.Tensor] = {}

    def put(ref: str, our: str, conv: bool = False) -> None:
        for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            if f"{our}.{suffix}" in ours:
                t = ours[f"{our}.{suffix}"]
                out[f"{ref}.{suffix}"] = t.unsqueeze(-1) if conv and suffix == "weight" else t

    out["face_recon.conv_0.directions"] = ours["backbone.conv_0.directions"]
    for i in range(1, 5):
        out[f"face_recon.conv_{i}.weights"] = ours[f"backbone.conv_{i}.weight"]
        out[f"face_recon.conv_{i}.bias"] = ours[f"backbone.conv_{i}.bias"]
        out[f"face_recon.conv_{i}.directions"] = ours[f"backbone.conv_{i}.directions"]
    for i in range(1, 4):
        put(f"face_recon.bn{i}", f"backbone.bn_{i}")
    # nn.Sequential indices of the reference's conv/BN layers (ReLUs between them)
    for seq, ours_mlp, n in (("conv1d_block", "block", 3), ("recon_head", "recon_head", 2),
                             ("face_head", "face_head", 4)):
        for j in range(n):
            put(f"face_recon.{seq}.{3 * j}", f"face_recon.{ours_mlp}.linears.{j}", conv=True)
            put(f"face_recon.{seq}.{3 * j + 1}", f"face_recon.{ours_mlp}.norms.{j}")
    for ref, our in (("rot_green", "rot_green"), ("rot_red", "rot_red"), ("ts", "ts_head")):
        put(f"{ref}.conv1", f"{our}.point_mlp.linears.0", conv=True)
        put(f"{ref}.bn1", f"{our}.point_mlp.norms.0")
        put(f"{ref}.conv2", f"{our}.point_mlp.linears.1", conv=True)
        put(f"{ref}.bn2", f"{our}.point_mlp.norms.1")
        put(f"{ref}.conv3", f"{our}.fc.linears.0", conv=True)
        put(f"{ref}.bn3", f"{our}.fc.norms.0")
        put(f"{ref}.conv4", f"{our}.out", conv=True)
    return out


# --------------------------------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------------------------------


def matmul_gflops(repeats: int = 9) -> dict[str, dict[str, float]]:
    """Median fp32 ``torch.mm`` rate (GFLOP/s) at the current thread count, for the heads' shapes: by wall
    clock, and by process CPU time divided by the thread count (what the cores deliver while they run
    this process; the two agree on an idle machine)."""
    out = {}
    threads = torch.get_num_threads()
    for m, k, n in ((1028, 1286, 1024), (1028, 1024, 256), (2048, 2048, 2048)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            a @ b
            wall.append(time.perf_counter() - t0)
            cpu.append((time.process_time() - c0) / threads)
        flop = 2 * m * k * n
        out[f"{m}x{k}x{n}"] = {"wall": flop / statistics.median(wall) / 1e9, "cpu": flop / statistics.median(cpu) / 1e9}
    return out


def matmul_flops(fn) -> int:
    """FLOPs (2 per multiply-add) of the matrix products run by ``fn()``."""
    from torch.utils.flop_counter import FlopCounterMode

    def addmm_inplace(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * a_shape[0] * a_shape[1] * b_shape[1]  # C += A @ B (not in torch's table)

    def linear_pointwise(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * math.prod(x_shape[:-1]) * x_shape[-1] * w_shape[0]  # oneDNN x @ W^T (+ ReLU), 3D-GC

    mapping = {torch.ops.aten.addmm_: addmm_inplace}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        mapping[torch.ops.mkldnn._linear_pointwise] = linear_pointwise
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return int(counter.get_total_flops())


def make_points(batch: int, n_points: int, seed: int) -> torch.Tensor:
    """``(B, N, 3)`` random instance clouds (about 10 cm across, 80 cm in front of the camera)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n_points, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 0.8])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, required=True, help="local checkout of lolrudy/GPV_Pose")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads for everything (default 2)")
    ap.add_argument("--batches", default="1,5", help="instances per forward, comma separated (default 1,5)")
    ap.add_argument("--points", type=int, default=1028, help="points per instance (default 1028)")
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per network and batch (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    ap.add_argument("--published-repeats", type=int, default=3,
                    help="timed runs of the reference with autograd on, as its evaluate.py (0: skip; default 3)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON (default {OUT})")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    load_before = list(os.getloadavg())
    PoseNet9D, shim = load_reference(args.reference.resolve())
    ours = build_model("gpv").eval()
    ref = PoseNet9D().eval()
    ref.load_state_dict(reference_state_dict(ours.state_dict()), strict=True)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    if n_ours != n_ref:
        raise SystemExit(f"parameter counts differ: ours {n_ours}, reference {n_ref}")

    def run_ours(points: torch.Tensor, class_ids: torch.Tensor, seed: int = 0):
        return ours({"points": points, "class_ids": class_ids}, generator=torch.Generator().manual_seed(seed))

    def run_ref(points: torch.Tensor, class_ids: torch.Tensor, seed: int = 0):
        torch.manual_seed(seed)  # its pooling draws torch.randperm from the global generator
        return ref(points, (class_ids - 1).view(-1, 1))  # 0-based category ids, as its data loader

    # same architecture: same weights + same pooling subsets -> same outputs
    pts, cls = make_points(3, args.points, seed=1), torch.tensor([1, 5, 6])
    with torch.no_grad():
        a, r = run_ours(pts, cls, seed=7), run_ref(pts, cls, seed=7)
    pairs = [(a.outputs["green"], r[4]), (a.outputs["red"], r[5]), (a.outputs["green_conf"], r[6]),
             (a.outputs["red_conf"], r[7]), (a.t, r[8]), (a.outputs["size_residual"], r[9])]
    parity = max(float((x - y).abs().max()) for x, y in pairs)
    if parity > 1e-4:
        raise SystemExit(f"our gpv and the reference PoseNet9D disagree by {parity:.3g} on the same weights")

    rows = []
    for B in [int(b) for b in args.batches.split(",")]:
        pts, cls = make_points(B, args.points, seed=B), torch.arange(B).remainder(6).add(1)
        t_ours, t_ref, cpu_ours, cpu_ref = [], [], [], []
        with torch.no_grad():
            for _ in range(args.warmup):
                run_ours(pts, cls)
                run_ref(pts, cls)
            for _ in range(args.repeats):  # alternate: both networks see the same machine load
                t0, c0 = time.perf_counter(), time.process_time()
                run_ours(pts, cls)
                t1, c1 = time.perf_counter(), time.process_time()
                run_ref(pts, cls)
                t_ref.append(time.perf_counter() - t1)
                cpu_ref.append(time.process_time() - c1)
                t_ours.append(t1 - t0)
                cpu_ours.append(c1 - c0)
        t_pub = []
        for _ in range(args.published_repeats):
            t0 = time.perf_counter()
            run_ref(pts, cls)
            t_pub.append(time.perf_counter() - t0)
        row = {
            "instances_per_forward": B,
            "ours_ms_per_instance": statistics.median(t_ours) * 1000 / B,
            "reference_ms_per_instance": statistics.median(t_ref) * 1000 / B,
            "ours_runs_ms": [round(t * 1000, 2) for t in t_ours],
            "reference_runs_ms": [round(t * 1000, 2) for t in t_ref],
            # CPU time of the process (all threads) per instance: less sensitive to other jobs' load
            "ours_cpu_ms_per_instance": statistics.median(cpu_ours) * 1000 / B,
            "reference_cpu_ms_per_instance": statistics.median(cpu_ref) * 1000 / B,
        }
        row["speedup"] = row["reference_ms_per_instance"] / row["ours_ms_per_instance"]
        if t_pub:
            row["reference_as_published_ms_per_instance"] = statistics.median(t_pub) * 1000 / B
            row["speedup_vs_as_published"] = row["reference_as_published_ms_per_instance"] / row["ours_ms_per_instance"]
        rows.append(row)
        print(f"B={B}: ours {row['ours_ms_per_instance']:.1f} ms/instance, reference "
              f"{row['reference_ms_per_instance']:.1f} ms/instance, speedup {row['speedup']:.2f}x", flush=True)

    pts1, cls1 = make_points(1, args.points, seed=0), torch.tensor([1])
    with torch.no_grad():
        flops = {
            "ours_inference": matmul_flops(lambda: run_ours(pts1, cls1)),
            "ours_plain_concat_heads": None,
            "reference": matmul_flops(lambda: run_ref(pts1, cls1)),
        }
        ours.fast_heads = False
        flops["ours_plain_concat_heads"] = matmul_flops(lambda: run_ours(pts1, cls1))
        ours.fast_heads = True
    gflops = matmul_gflops()
    doc = {
        "benchmark": "gpv vs published GPV-Pose PoseNet9D, network forward, same process",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_description(),
        "threads": args.threads,
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "niceness": os.nice(0),
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "reference": {
            "repository": "lolrudy/GPV_Pose",
            "module": "network/fs_net_repo/PoseNet9D.py:PoseNet9D",
            "absl_shim": shim,
            "parameters": n_ref,
            "mode": "eval, torch.no_grad (as_published: eval, autograd on, as evaluation/evaluate.py)",
        },
        "ours": {"model": "gpv", "parameters": n_ours, "mode": "eval, torch.no_grad (as demopose test)"},
        "parity_max_abs_diff": parity,
        "points_per_instance": args.points,
        "repeats": args.repeats,
        "results": rows,
        "matmul_flops_per_instance": flops,
        "matmul_gflop_per_s": gflops,
    }
    best = {kind: max(r[kind] for r in gflops.values()) for kind in ("wall", "cpu")}
    # matrix products alone at the best measured rate (CPU-time rate: what the cores deliver when running)
    doc["matmul_floor_ms_per_instance"] = {kind: flops["ours_inference"] / rate / 1e6 for kind, rate in best.items()}
    write_json_atomic(args.out, doc)
    print(f"ours {flops['ours_inference'] / 1e9:.2f} GFLOP/instance (plain heads "
          f"{flops['ours_plain_concat_heads'] / 1e9:.2f}, reference {flops['reference'] / 1e9:.2f}); "
          f"matmul {best['wall']:.0f} GFLOP/s wall, {best['cpu']:.0f} by CPU time -> floor "
          f"{doc['matmul_floor_ms_per_instance']['cpu']:.1f} ms; wrote {args.out}")


if __name__ == "__main__":
    main()
