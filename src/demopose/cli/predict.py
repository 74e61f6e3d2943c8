"""Estimate object poses in RGB-D frames: poses as JSON and an overlay picture per frame.

Examples::

    demopose predict tests/fixtures/nocs_sample/Real/test/scene_1/0000_color.png   # a NOCS frame
    demopose predict my_frames/ --out predictions/          # NAME_color.png + NAME_depth.png + camera.json
    demopose predict FRAME --checkpoint runs/demopose/model_final.pt --masks gt

INPUT is a NOCS frame (its prefix ``.../0000`` or any of its files), a folder of NOCS frames, or a
folder of your own colour + depth PNGs with a ``camera.json`` (intrinsics in pixels and
``depth_scale`` in metres per depth unit; see :mod:`demopose.data.user_frames`). Depth units and
intrinsics are checked, and implausible values stop the run with the file and field named.

Writes ``<out>/<name>.json`` (every object's class, score, R, t (m), size (m), 2D box; with ground
truth, the errors of the matched prediction) and ``<out>/<name>_overlay.png`` (predictions solid with
axes, ground truth dashed white).
"""

from __future__ import annotations

import argparse

HELP = "estimate object poses in RGB-D frames (NOCS frames or colour/depth PNGs + camera.json): JSON + overlays"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="NOCS frame (prefix or file), NOCS folder, or folder with camera.json")
    parser.add_argument("--checkpoint", help="model checkpoint (default: the bundled DeMo-Pose)")
    parser.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    parser.add_argument("--masks", choices=("detector", "gt"), default="detector",
                        help="instance masks: the model's detector + depth (default) or the frame's ground truth")
    parser.add_argument("--score-threshold", type=float, default=0.3, help="minimum detection score")
    parser.add_argument("--max-frames", type=int, default=0, help="at most N frames of a folder (0: all)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="inference runtime (onnxruntime: a .pt is exported once to ~/.cache/demopose/onnx; "
                             "or pass an exported .onnx as --checkpoint)")
    parser.add_argument("--no-progress", action="store_true")


def _sources(path, max_frames: int):
    """``[(name, source, loader)]``: loader() -> (rgb, depth, K, frame-or-None); source names the files."""
    from pathlib import Path

    from demopose.data.nocs import list_frames, load_frame, parse_frame_path
    from demopose.data.user_frames import list_user_frames, read_camera_json, read_user_frame

    p = Path(path)
    if p.is_dir() and (p / "camera.json").is_file():
        cam = read_camera_json(p / "camera.json")
        items = []
        for uf in list_user_frames(p):
            items.append((uf.name, f"{uf.depth} (depth_scale from {p / 'camera.json'})",
                          lambda uf=uf: (*read_user_frame(uf, cam), None)))
    elif p.is_dir():
        prefixes = list_frames(p)
        if not prefixes:
            raise FileNotFoundError(f"{p}: neither a camera.json folder nor a folder of NOCS frames "
                                    f"(see demopose predict --help)")
        items = [(parse_frame_path(q).frame_id.replace("/", "_"), str(q), lambda q=q: _nocs(load_frame(q)))
                 for q in prefixes]
    else:
        fp = parse_frame_path(p)  # raises with the expected names
        items = [(fp.frame_id.replace("/", "_"), str(fp.prefix), lambda: _nocs(load_frame(fp.prefix)))]
    return items[:max_frames] if max_frames > 0 else items


def _nocs(frame):
    return frame.rgb, frame.depth, frame.K, frame


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from tqdm.auto import tqdm

    from demopose.engine.inference import gt_instances
    from demopose.evaluation.errors import nearest_gt_errors
    from demopose.io import write_json_atomic, write_png_atomic
    from demopose.predictor import BUNDLED_CHECKPOINT, Predictor
    from demopose.viz.draw import draw_predictions_and_gt, overlay_masks

    sources = _sources(args.input, args.max_frames)
    ckpt = args.checkpoint or BUNDLED_CHECKPOINT
    predictor = Predictor.from_checkpoint(ckpt, backend=args.backend, device=args.device,
                                          score_threshold=args.score_threshold)
    out = Path(args.out)
    for name, source, load in tqdm(sources, desc="predict", unit="frame",
                                   disable=args.no_progress or len(sources) < 2):
        rgb, depth, K, frame = load()
        f = predictor.make_frame(rgb, depth, K, source=source)
        inst = None
        if args.masks == "gt":
            if frame is None or frame.poses is None:
                raise ValueError(f"{name}: --masks gt needs a NOCS frame with ground truth")
            inst = gt_instances(frame)
        poses, used = predictor.predict_frame(f, inst)
        objects = [o.to_dict() for o in predictor.objects(poses, used)]  # by decreasing score
        order = np.argsort(-poses.scores, kind="stable")  # the same order
        poses = poses.select(order)
        if frame is not None and frame.poses is not None:
            for obj, err in zip(objects, nearest_gt_errors(poses, frame)):
                obj["error_vs_gt"] = err
        write_json_atomic(out / f"{name}.json", {"frame": name, "input": str(args.input), "checkpoint": str(ckpt),
                                                "masks": args.masks, "K": np.round(K, 4).tolist(),
                                                "units": "metres; R maps object to camera (OpenCV axes)",
                                                "objects": objects})
        img = rgb
        if len(used.masks) and used.masks.any():
            img = overlay_masks(img, used.masks[order] if len(used.masks) == len(order) else used.masks, alpha=0.25)
        gt = frame.ground_truth() if frame is not None and frame.poses is not None else None
        img = draw_predictions_and_gt(img, poses, gt, K, predictor.categories)
        write_png_atomic(out / f"{name}_overlay.png", img[:, :, ::-1])
        print(f"{name}: {len(objects)} object(s)")
        for o in objects:
            err = o.get("error_vs_gt")
            e = (f"  err {err['rotation_deg']:.1f}° {err['translation_cm']:.1f} cm IoU {err['iou3d']:.2f}"
                 if err else "")
            print(f"  {o['class_name']:<8} {o['score']:.2f}  t = {np.round(o['t'], 3).tolist()} m  "
                  f"size = {np.round(o['size'], 3).tolist()} m{e}")
    print(f"wrote {len(sources)} JSON file(s) and overlay(s) to {out}")
    return 0
