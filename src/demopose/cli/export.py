"""Export a checkpoint's inference graph to ONNX, optionally quantised to int8 with onnxruntime.

Examples::

    demopose export checkpoints/gpv_synth_small.pt --format onnx
    demopose export checkpoints/gpv_synth_small.pt --int8 --calibration /work/data/synth_gpv --calib-frames 32
    demopose export runs/mono/model_final.pt --int8 --int8-mode dynamic

Writes ``<checkpoint>.onnx`` (``--out`` to choose; a DeMo-Pose checkpoint gives ``<stem>.mono.onnx`` and
``<stem>.pose.onnx``) and with ``--int8`` also ``<stem>.int8.onnx`` (``.int8.mono.onnx`` / ``.int8.pose.onnx``).
The number of instances (images for the detector) is dynamic; the points per instance and the detector's input
size are those the model was built with. Static int8 calibrates on instances of ``--calib-frames`` frames of a
NOCS-layout dataset (ground-truth masks), e.g. one written by ``demopose synth``; ``--int8-mode dynamic`` needs no
data. Every file is checked against PyTorch on example inputs when it is written, and written atomically.
CleanPose does not export (the command says why). Run the files with ``demopose.export.load_ort_model``.
"""

from __future__ import annotations

import argparse

HELP = "export a checkpoint to ONNX (dynamic number of instances), optionally int8-quantised"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint holding the model name and config (last.pt, model_final.pt)")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="export format (onnx)")
    parser.add_argument("--out", help="output .onnx path (default: the checkpoint path with the suffix .onnx)")
    parser.add_argument("--int8", action="store_true", help="also write an int8-quantised model (<stem>.int8.onnx)")
    parser.add_argument("--int8-mode", default="static", choices=["static", "dynamic"],
                        help="static: calibrated int8 weights and activations (needs --calibration); "
                             "dynamic: int8 weights, activations quantised at run time (no data)")
    parser.add_argument("--calibration", metavar="DATA_ROOT", help="NOCS-layout dataset root for static calibration")
    parser.add_argument("--subset", default="real_train", help="calibration subset (default real_train)")
    parser.add_argument("--calib-frames", type=int, default=32, help="calibration frames, evenly spread (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="point sampling / pooling seed of the calibration inputs")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from demopose.export.onnx_export import export_checkpoint, graph_paths, read_metadata
    from demopose.export.quantize import calibration_feeds, quantize_graph

    if args.int8 and args.int8_mode == "static" and not args.calibration:
        raise ValueError("--int8 (static) needs --calibration DATA_ROOT (a NOCS-layout dataset, e.g. from "
                         "'demopose synth'); or pass --int8-mode dynamic")
    if args.calib_frames < 1:
        raise ValueError(f"--calib-frames: expected a positive count, got {args.calib_frames}")
    if args.calibration and not Path(args.calibration).is_dir():
        raise FileNotFoundError(f"--calibration: {args.calibration} is not a folder")
    ck = Path(args.checkpoint)
    out = Path(args.out) if args.out else ck.with_suffix(".onnx")
    if out.suffix != ".onnx":
        raise ValueError(f"--out: expected a path ending in .onnx, got {out}")
    paths = export_checkpoint(ck, out, opset=args.opset)
    for kind, p in paths.items():
        print(f"wrote {p} ({kind} graph, fp32, {p.stat().st_size / 1e6:.1f} MB)")
    if not args.int8:
        return 0
    kind = "demopose" if len(paths) == 2 else next(iter(paths))
    q_paths = graph_paths(out.with_name(out.name[: -len(".onnx")] + ".int8.onnx"), kind)
    link = None
    if kind == "demopose":
        link = read_metadata(paths["pose"])["demopose"] | {"mono": q_paths["mono"].name, "pose": q_paths["pose"].name}
    for g in ("mono", "pose"):
        if g not in paths:
            continue
        feeds = None
        if args.int8_mode == "static":
            feeds = calibration_feeds(paths[g], args.calibration, args.subset, args.calib_frames, args.seed,
                                      mono_path=paths.get("mono") if g == "pose" else None,
                                      progress=not args.no_progress)
        quantize_graph(paths[g], q_paths[g], args.int8_mode, feeds,
                       metadata={"demopose": link} if link else None)
        extra = f", calibrated on {len(feeds)} frames of {args.calibration} ({args.subset})" if feeds else ""
        print(f"wrote {q_paths[g]} ({g} graph, int8 {args.int8_mode}{extra}, "
              f"{q_paths[g].stat().st_size / 1e6:.1f} MB)")
    return 0
