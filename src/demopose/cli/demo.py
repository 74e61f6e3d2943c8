"""The one-minute tour: render a scene, estimate its objects' poses, compare with the ground truth.

Offline and on a CPU: generates one synthetic RGB-D frame (objects of the six NOCS categories on a
table, sensor noise; :mod:`demopose.synth`), runs the bundled DeMo-Pose checkpoint on it — objects
found by its monocular detector, masks cut from the depth, poses from the fused RGB-D network — prints
every pose with its error against the ground truth, and writes the overlay picture (predictions solid
with axes, ground truth dashed white).

Example::

    demopose demo                   # -> demopose_demo/demo.png
    demopose demo --seed 3 --out my_demo --checkpoint runs/demopose/model_final.pt
"""

from __future__ import annotations

import argparse

HELP = "generate a scene, run the bundled DeMo-Pose checkpoint, print poses and errors, write the overlay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demopose_demo", help="output folder (default: ./demopose_demo)")
    parser.add_argument("--seed", type=int, default=11, help="scene seed (the bundled model saw seed 1 only)")
    parser.add_argument("--checkpoint", help="model checkpoint (default: the bundled DeMo-Pose)")
    parser.add_argument("--preset", choices=("v1", "v2"), default="v1",
                        help="generator version of the scene (default v1: the frames the bundled model was trained on; "
                             "v2: demopose synth's default, docs/synthetic_data.md)")
    parser.add_argument("--masks", choices=("detector", "gt"), default="detector",
                        help="instance masks: the model's detector + depth (default) or the ground truth")
    parser.add_argument("--score-threshold", type=float, default=0.3, help="minimum detection score")
    parser.add_argument("--detector", help="monocular detector checkpoint for a pose checkpoint without one "
                                           "(default: the bundled small detector)")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import numpy as np

    from demopose.data.nocs import NOCSDataset
    from demopose.evaluation.errors import nearest_gt_errors
    from demopose.io import write_json_atomic, write_png_atomic
    from demopose.pipeline import gt_instances
    from demopose.predictor import BUNDLED_CHECKPOINT, Predictor
    from demopose.synth.generate import SynthConfig, generate
    from demopose.viz.draw import draw_predictions_and_gt

    t0 = time.perf_counter()
    out = Path(args.out)
    scene_root = out / "scene"
    generate(SynthConfig(out=str(scene_root), frames=1, seed=args.seed, style="real", split="test",
                         models_per_category=4, preset=args.preset), progress=False)
    frame = NOCSDataset(scene_root, "real_test", load_nocs=False)[0]
    t_scene = time.perf_counter() - t0
    ckpt = args.checkpoint or BUNDLED_CHECKPOINT
    predictor = Predictor.from_checkpoint(ckpt, score_threshold=args.score_threshold)
    if predictor.detector is predictor.model and args.masks == "gt":
        raise ValueError(f"--masks gt: {ckpt} is a monocular detector, which finds the objects itself; leave out "
                         f"--masks gt or pass a pose checkpoint (--checkpoint)")
    if args.masks == "detector" and (args.detector or predictor.detector is None):
        from demopose.engine.checkpoint import load_model
        from demopose.predictor import BUNDLED_DETECTOR

        try:
            predictor.set_detector(load_model(args.detector or BUNDLED_DETECTOR))
        except ValueError as e:
            raise ValueError(f"--detector: {e}") from None
    t1 = time.perf_counter()
    poses, _ = predictor.predict_frame(frame, gt_instances(frame) if args.masks == "gt" else None)
    t_pred = time.perf_counter() - t1
    order = np.argsort(-poses.scores, kind="stable")
    poses = poses.select(order)
    errors = nearest_gt_errors(poses, frame)
    names = [frame.categories[int(c)].name for c in frame.class_ids]
    print(f"scene: {frame.width}x{frame.height} frame with {len(frame)} objects ({', '.join(names)}), "
          f"rendered in {t_scene:.1f} s -> {scene_root}")
    print(f"model: {ckpt}  (masks: {args.masks})")
    print(f"\n{'object':<8} {'score':>5}  {'t (m)':<24} {'size (m)':<22} {'rot err':>8} {'trans err':>9} {'IoU':>5}")
    rows = []
    for k in range(len(poses)):
        c = int(poses.class_ids[k])
        e = errors[k]
        t = np.round(poses.t[k], 3).tolist()
        s = np.round(poses.size[k], 3).tolist()
        err = (f"{e['rotation_deg']:>7.1f}° {e['translation_cm']:>6.1f} cm {e['iou3d']:>5.2f}" if e else
               f"{'-':>8} {'-':>9} {'-':>5}")
        print(f"{frame.categories[c].name:<8} {poses.scores[k]:>5.2f}  {str(t):<24} {str(s):<22} {err}")
        rows.append({"class_name": frame.categories[c].name, "score": round(float(poses.scores[k]), 4),
                     "R": np.round(poses.R[k], 6).tolist(), "t": t, "size": s, "error_vs_gt": e})
    found = {e["gt_index"] for e in errors if e is not None}
    good = sum(1 for e in errors if e is not None and e["rotation_deg"] <= 10 and e["translation_cm"] <= 10)
    print(f"\n{len(poses)} predictions for {len(frame)} objects; {len(found)} objects matched by class, "
          f"{good} prediction(s) within 10°/10 cm; inference {t_pred:.2f} s on {predictor.device}")
    img = draw_predictions_and_gt(frame.rgb, poses, frame.ground_truth(), frame.K, frame.categories)
    write_png_atomic(out / "demo.png", img[:, :, ::-1])
    write_json_atomic(out / "demo.json", {"checkpoint": str(ckpt), "seed": args.seed, "masks": args.masks,
                                          "objects": rows,
                                          "ground_truth": [p.to_dict() for p in frame.poses or []]})
    print(f"wrote {out / 'demo.png'} (predictions solid, ground truth dashed white) and {out / 'demo.json'} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0
