"""Training speed (issue #15): whole training steps by stage, fp32 and bf16, against the code before this work,
and the ``gpv`` network's forward + backward against the published GPV-Pose ``PoseNet9D``.

Usage::

    python benchmarks/train_speed.py steps --data DATA [--models gpv_small,demopose_small] [--before REV]
    python benchmarks/train_speed.py network --reference /path/to/GPV_Pose

``steps``: for every model, a child process per (code, precision) builds the model, its training set (the
packaged config's, ``DATA`` a ``demopose synth`` dataset), optimiser and schedule exactly as ``demopose train``
does, runs ``--warmup`` steps, then times ``--steps`` whole training steps split into stages: ``data`` (the next
batch from the loader, loader workers as ``--workers``), ``forward`` (under autocast for bf16), ``loss``,
``backward``, ``optimizer`` (gradient clipping, step, schedule). ``--before REV`` adds the same children on a
git worktree of ``REV`` (its own ``src`` on ``PYTHONPATH``, fp32: what that code ran); the children run
interleaved, round by round (``--rounds``), and each row keeps the median over rounds of the per-round medians.

``network``: the published ``PoseNet9D`` (a local lolrudy/GPV_Pose checkout, imported as
``benchmarks/gpv_reference_speed.py`` does, our weights copied in and the outputs checked equal) and our ``gpv``
in train mode, forward + backward of the sum of every output, batch 16 of 1028 random points, alternating
every repeat in one process; ours in fp32 and under bf16 autocast, the reference in fp32; plus both in eval
mode under ``no_grad`` at batch 5.

Writes ``benchmarks/results/train_speed_steps.json`` / ``train_speed_network.json`` with the machine (CPU model
and flags: AMX, AVX512-BF16), threads and load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"

# model -> (packaged config, overrides) for the step benchmark
CONFIGS = {
    "gpv_small": ("gpv_synth_small", []),
    "gpv": ("gpv_synth_small", ["model.name=gpv"]),
    "demopose_small": ("demopose_synth_small", []),
    "demopose": ("demopose_synth_small", ["model.name=demopose", "model.args.mono_checkpoint=null"]),
    "mono_small": ("mono_synth_small", []),
    "cleanpose_small": ("cleanpose_synth_small", []),
    "cleanpose": ("cleanpose_synth_small", ["model.name=cleanpose",
                                            "model.args.distill.teacher=pointbert",  # ULIP-2 size, random weights
                                            "model.args.distill.teacher_checkpoint=null",
                                            "model.args.distill.teacher_dim=768"]),
}
STAGES = ("data", "forward", "loss", "backward", "optimizer")


# --------------------------------------------------------------------------------------------------
# one child: whole training steps of one model at one precision, on whichever demopose is importable
# --------------------------------------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    # the thread defaults come in the environment from the parent (the child may run an older tree)
    import torch

    from demopose.engine import load_config
    from demopose.engine.build import build_collate, build_model_from_config, build_optim, build_train_set
    from demopose.engine.trainer import move_to_device, seed_everything

    torch.set_num_threads(args.threads)
    config, overrides = CONFIGS[args.model]
    cfg = load_config(config, [*overrides, f"data.root={args.data}", f"train.batch_size={args.batch}",
                               f"train.max_steps={args.warmup + args.steps + 10}"])
    seed_everything(0)
    model = build_model_from_config(cfg)
    train_set = build_train_set(cfg, model)
    opt, sched = build_optim(cfg, model)
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch, shuffle=True, drop_last=True,
                                         num_workers=args.workers, collate_fn=build_collate(train_set),
                                         generator=torch.Generator().manual_seed(0))
    bf16 = args.precision == "bf16"
    clip = cfg.train.get("grad_clip")
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    it = iter(_cycle(loader))
    model.train()
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        batch = move_to_device(next(it), torch.device("cpu"))
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = model(batch)
        if bf16:
            pred = _float32(pred)
        t2 = time.perf_counter()
        losses = model.loss(pred, batch)
        total = sum(losses.values())
        t3 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        total.backward()
        t4 = time.perf_counter()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
        opt.step()
        if sched is not None:
            sched.step()
        t5 = time.perf_counter()
        if step >= args.warmup:
            for name, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                times[name].append(dt)
    step_s = [sum(times[s][i] for s in STAGES) for i in range(args.steps)]
    med = statistics.median(step_s)
    print(json.dumps({
        "model": args.model, "precision": args.precision, "batch": args.batch,
        "unit": "images" if cfg.data.get("sample", "instance") == "frame" else "instances",
        "step_ms": med * 1000, "items_per_s": args.batch / med,
        "stage_ms": {s: statistics.median(v) * 1000 for s, v in times.items()},
        "steps_ms": [round(t * 1000, 1) for t in step_s],
        "final_loss": float(total),
    }))


def _cycle(loader):
    while True:
        yield from loader


def _float32(value):
    """Autocast outputs (bf16 tensors, also inside the prediction record) taken to float32 for the loss: the same as
    :func:`demopose.engine.trainer.float32_outputs`, written here because the children also run the code of the
    commit before this work (``--before``), which does not have it."""
    import dataclasses

    import torch

    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype == torch.bfloat16 else value
    if isinstance(value, dict):
        return {k: _float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_float32(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _float32(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    return value


# --------------------------------------------------------------------------------------------------
# the parent: interleaved children, current code and the code before this work
# --------------------------------------------------------------------------------------------------


def _worktree(rev: str) -> Path:
    path = Path(tempfile.gettempdir()) / f"demopose-before-{rev}"
    if not (path / "src" / "demopose").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(path), rev], check=True,
                       capture_output=True)
    return path


def steps(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "src"))
    from demopose._env import thread_defaults
    from demopose.benchmark.latency import machine_description
    from demopose.io import write_json_atomic

    variants = [("current", p, REPO) for p in args.precisions.split(",")]
    if args.before:
        tree = _worktree(args.before)
        variants.insert(0, (f"before ({args.before})", "fp32", tree))
    models = args.models.split(",")
    runs: dict[tuple[str, str, str], list[dict]] = {}
    load_before = list(os.getloadavg())
    for r in range(args.rounds):
        for model in models:
            for label, precision, tree in variants:
                env = {**os.environ, **thread_defaults(), "PYTHONPATH": str(tree / "src")}
                cmd = [sys.executable, str(Path(__file__).resolve()), "child", "--model", model, "--precision",
                       precision, "--data", str(args.data), "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--batch", str(args.batch), "--threads", str(args.threads), "--workers", str(args.workers)]
                out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
                if out.returncode:
                    print(out.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"{model} / {label} / {precision}: the child failed (rc {out.returncode})")
                row = json.loads(out.stdout.strip().splitlines()[-1])
                runs.setdefault((model, label, precision), []).append(row)
                print(f"round {r + 1}: {model:16s} {label:22s} {precision}: {row['step_ms']:8.1f} ms/step, "
                      f"{row['items_per_s']:6.1f} {row['unit']}/s  "
                      + " ".join(f"{s} {v:.0f}" for s, v in row["stage_ms"].items()), flush=True)
    rows = []
    for (model, label, precision), rs in runs.items():
        rows.append({
            "model": model, "code": label, "precision": precision, "unit": rs[0]["unit"], "batch": rs[0]["batch"],
            "step_ms": statistics.median(r["step_ms"] for r in rs),
            "items_per_s": statistics.median(r["items_per_s"] for r in rs),
            "stage_ms": {s: statistics.median(r["stage_ms"][s] for r in rs) for s in STAGES},
            "rounds_step_ms": [round(r["step_ms"], 1) for r in rs],
        })
    if args.before:
        for row in rows:
            base = next(r for r in rows if r["model"] == row["model"] and r["code"].startswith("before"))
            row["speedup_vs_before"] = base["step_ms"] / row["step_ms"]
    doc = {
        "benchmark": "whole training steps by stage (data, forward, loss, backward, optimizer)",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_description(),
        "threads": args.threads, "loader_workers": args.workers, "batch": args.batch,
        "steps_timed": args.steps, "warmup_steps": args.warmup, "rounds": args.rounds,
        "before": args.before,
        "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
        "results": rows,
    }
    write_json_atomic(args.out or RESULTS / "train_speed_steps.json", doc)
    print(f"wrote {args.out or RESULTS / 'train_speed_steps.json'}")


# --------------------------------------------------------------------------------------------------
# gpv against the published PoseNet9D, forward + backward
# --------------------------------------------------------------------------------------------------


def network(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "src"))
    from demopose import set_thread_defaults

    set_thread_defaults()  # before torch

    import torch

    from demopose.benchmark.latency import machine_description
    from demopose.io import write_json_atomic
    from demopose.models import build_model

    spec = importlib.util.spec_from_file_location("gpv_reference_speed", REPO / "benchmarks" / "gpv_reference_speed.py")
    refmod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(refmod)
    torch.set_num_threads(args.threads)
    load_before = list(os.getloadavg())
    PoseNet9D, shim = refmod.load_reference(args.reference.resolve())
    torch.manual_seed(0)
    ours = build_model("gpv")
    ref = PoseNet9D()
    ref.load_state_dict(refmod.reference_state_dict(ours.state_dict()), strict=True)

    def run_ours(points, class_ids, seed=0):
        return ours({"points": points, "class_ids": class_ids}, generator=torch.Generator().manual_seed(seed))

    def run_ref(points, class_ids, seed=0):
        torch.manual_seed(seed)  # its pooling draws from the global generator
        return ref(points, (class_ids - 1).view(-1, 1))

    # parity in eval mode (same weights, same pooling subsets)
    ours.eval(), ref.eval()
    pts, cls = refmod.make_points(3, args.points, seed=1), torch.tensor([1, 5, 6])
    with torch.no_grad():
        a, r = run_ours(pts, cls, seed=7), run_ref(pts, cls, seed=7)
    pairs = [(a.outputs["green"], r[4]), (a.outputs["red"], r[5]), (a.t, r[8]), (a.outputs["size_residual"], r[9])]
    parity = max(float((x - y).abs().max()) for x, y in pairs)
    if parity > 1e-4:
        raise SystemExit(f"our gpv and the reference PoseNet9D disagree by {parity:.3g} on the same weights")

    def ours_step(points, class_ids, bf16):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            p = run_ours(points, class_ids)
        total = p.R.sum() + p.t.sum() + p.size.sum()
        total = total + sum(v.float().sum() for v in p.outputs.values() if v.is_floating_point())
        total.backward()

    def ref_step(points, class_ids, bf16=False):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = run_ref(points, class_ids)
        sum(o.float().sum() for o in out if isinstance(o, torch.Tensor) and o.is_floating_point()).backward()

    rows = {}
    B = args.batch
    ours.train(), ref.train()
    pts, cls = refmod.make_points(B, args.points, seed=B), torch.arange(B).remainder(6).add(1)
    fns = {"reference_fp32": lambda: ref_step(pts, cls), "ours_fp32": lambda: ours_step(pts, cls, False),
           "ours_bf16": lambda: ours_step(pts, cls, True), "reference_bf16": lambda: ref_step(pts, cls, True)}
    times = {k: [] for k in fns}
    for _ in range(args.warmup):
        for fn in fns.values():
            fn()
    for _ in range(args.repeats):  # alternate: every variant sees the same machine load
        for k, fn in fns.items():
            ours.zero_grad(set_to_none=True), ref.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    for k, ts in times.items():
        rows[k] = {"ms_per_instance": statistics.median(ts) * 1000 / B, "runs_ms": [round(t * 1000, 1) for t in ts]}
    ref_ms = rows["reference_fp32"]["ms_per_instance"]
    train = {"batch": B, **rows,
             "speedup_fp32": ref_ms / rows["ours_fp32"]["ms_per_instance"],
             "speedup_bf16": ref_ms / rows["ours_bf16"]["ms_per_instance"],
             "speedup_bf16_vs_reference_bf16": rows["reference_bf16"]["ms_per_instance"]
             / rows["ours_bf16"]["ms_per_instance"]}
    print(f"train B={B}: reference fp32 {ref_ms:.1f} ms/inst, ours fp32 {rows['ours_fp32']['ms_per_instance']:.1f} "
          f"({train['speedup_fp32']:.2f}x), ours bf16 {rows['ours_bf16']['ms_per_instance']:.1f} "
          f"({train['speedup_bf16']:.2f}x)", flush=True)

    # inference, eval + no_grad, batch 5 (as gpv_reference_speed.py)
    ours.eval(), ref.eval()
    Bi = args.inference_batch
    pts, cls = refmod.make_points(Bi, args.points, seed=Bi), torch.arange(Bi).remainder(6).add(1)
    inf = {"ours_fp32": [], "reference_fp32": []}
    with torch.no_grad():
        for _ in range(args.warmup):
            run_ours(pts, cls), run_ref(pts, cls)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run_ours(pts, cls)
            t1 = time.perf_counter()
            run_ref(pts, cls)
            inf["reference_fp32"].append(time.perf_counter() - t1)
            inf["ours_fp32"].append(t1 - t0)
    inference = {"batch": Bi, **{k: statistics.median(v) * 1000 / Bi for k, v in inf.items()}}
    inference["speedup"] = inference["reference_fp32"] / inference["ours_fp32"]
    print(f"inference B={Bi}: reference {inference['reference_fp32']:.1f}, ours {inference['ours_fp32']:.1f} ms/inst "
          f"({inference['speedup']:.2f}x)", flush=True)
    doc = {
        "benchmark": "gpv vs published GPV-Pose PoseNet9D: train-mode forward + backward of the sum of every output; "
                     "eval-mode inference under no_grad",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_description(),
        "threads": args.threads, "points_per_instance": args.points, "repeats": args.repeats,
        "reference": {"repository": "lolrudy/GPV_Pose", "module": "network/fs_net_repo/PoseNet9D.py:PoseNet9D",
                      "absl_shim": shim},
        "parity_max_abs_diff": parity,
        "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
        "train": train, "inference": inference,
    }
    out = args.out or RESULTS / "train_speed_network.json"
    write_json_atomic(out, doc)
    print(f"wrote {out}")


def markdown(path: Path) -> str:
    """The tables of a results file (``steps`` or ``network``), as BENCHMARKS.md shows them."""
    doc = json.loads(Path(path).read_text())
    m = doc["machine"]
    lines = [f"{m['cpu']}, {m['cores']} cores ({', '.join(m.get('cpu_flags', []))}), torch {m['torch']}, "
             f"{doc['threads']} threads, {doc['date']}; load average before / after "
             f"{doc['load_average_before'][0]:.1f} / {doc['load_average_after'][0]:.1f}.", ""]
    if "results" in doc:
        lines += ["| model | code | precision | batch | ms / step | items / s | data | forward | loss | backward | "
                  "optimizer | × before | rounds (ms / step) |", "|---" * 13 + "|"]
        for r in doc["results"]:
            st = r["stage_ms"]
            speedup = f"{r['speedup_vs_before']:.2f}" if "speedup_vs_before" in r else ""
            lines.append(f"| {r['model']} | {r['code']} | {r['precision']} | {r['batch']} | {r['step_ms']:.0f} | "
                         f"{r['items_per_s']:.1f} {r['unit']} | " + " | ".join(f"{st[s]:.0f}" for s in STAGES)
                         + f" | {speedup} | {', '.join(str(x) for x in r['rounds_step_ms'])} |")
    else:
        t, i = doc["train"], doc["inference"]
        lines += ["| | ms / instance | × reference fp32 |", "|---|---|---|"]
        for k in ("reference_fp32", "reference_bf16", "ours_fp32", "ours_bf16"):
            lines.append(f"| train B={t['batch']}: {k.replace('_', ' ')} | {t[k]['ms_per_instance']:.1f} | "
                         f"{t['reference_fp32']['ms_per_instance'] / t[k]['ms_per_instance']:.2f} |")
        lines.append(f"| inference B={i['batch']}: reference fp32 | {i['reference_fp32']:.1f} | 1.00 |")
        lines.append(f"| inference B={i['batch']}: ours fp32 | {i['ours_fp32']:.1f} | {i['speedup']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("steps", help="whole training steps by stage, interleaved child processes")
    s.add_argument("--data", type=Path, required=True, help="a demopose synth dataset (Real/train)")
    s.add_argument("--models", default="gpv_small,demopose_small,mono_small,cleanpose_small,gpv")
    s.add_argument("--precisions", default="fp32,bf16", help="of the current code (default fp32,bf16)")
    s.add_argument("--before", help="git revision of the code before this work (a worktree, fp32)")
    s.add_argument("--rounds", type=int, default=2)
    s.add_argument("--out", type=Path)
    n = sub.add_parser("network", help="gpv vs the published PoseNet9D, forward + backward")
    n.add_argument("--reference", type=Path, required=True, help="local checkout of lolrudy/GPV_Pose")
    n.add_argument("--inference-batch", type=int, default=5)
    n.add_argument("--points", type=int, default=1028)
    n.add_argument("--repeats", type=int, default=5)
    n.add_argument("--out", type=Path)
    t = sub.add_parser("table", help="print a results file's tables (markdown)")
    t.add_argument("file", type=Path)
    c = sub.add_parser("child", help=argparse.SUPPRESS)
    c.add_argument("--model", required=True)
    c.add_argument("--precision", default="fp32")
    c.add_argument("--data", type=Path, required=True)
    for p in (s, c):
        p.add_argument("--steps", type=int, default=8, help="timed steps per child (default 8)")
        p.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0)")
    for p in (s, n, c):
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--batch", type=int, default=16)
        p.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    if args.mode == "table":
        print(markdown(args.file))
        return
    {"steps": steps, "network": network, "child": child}[args.mode](args)


if __name__ == "__main__":
    main()
