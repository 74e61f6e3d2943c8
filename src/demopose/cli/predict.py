"""Estimate object poses in RGB-D frames: poses as JSON and an overlay picture per frame.

Examples::

    demopose predict tests/fixtures/nocs_sample/Real/test/scene_1/0000_color.png   # a NOCS frame
    demopose predict my_frames/ --out predictions/          # NAME_color.png + NAME_depth.png + camera.json
    demopose predict FRAME --checkpoint runs/demopose/model_final.pt --masks gt
    demopose predict my_frames/ --checkpoint runs/gpv/model_final.pt          # + the bundled detector
    demopose predict my_frames/ --checkpoint runs/gpv/model_final.pt --detector runs/mono/model_final.pt

INPUT is a NOCS frame (its prefix ``.../0000`` or any of its files), a folder of NOCS frames, a HouseCat6D
scene or root, or a folder of your own colour + depth PNGs with a ``camera.json`` (intrinsics in pixels and
``depth_scale`` in metres per depth unit; see :mod:`demopose.data.user_frames`). Depth units and
intrinsics are checked; a frame with implausible values is skipped with the file and field named, the
other frames are processed, the skipped ones listed at the end, and the exit code is 1.

A pose checkpoint without a detector of its own (``gpv``, ``cleanpose``) gets its objects and masks from
``--detector`` (default: the small detector shipped in the package); a DeMo-Pose checkpoint uses its own unless
``--detector`` is given. Poses come from the inference path of ``demopose test`` (same point count and seed as
the checkpoint's training config; frame ``i`` of the input uses seed ``eval.seed + i``), so ``--masks gt`` here
and ``demopose test ... eval.masks=gt`` give the same poses for the same frame.

Writes ``<out>/<name>.json`` (every object's class, score, R, t (m), size (m), 2D box, ``size_clamped`` when
an extent was predicted below 5 mm and raised to it; with ground truth, the errors of the matched prediction
and every ground-truth object no prediction found, under ``missed``) and ``<out>/<name>_overlay.png``
(the masks the network ran on, predictions solid with axes, ground truth dashed white, a legend). Frames with no
object and missed objects are also reported on the console. Where the frames have ground truth (a NOCS folder such
as REAL275's), the command ends with the count of objects posed within 5°/2 cm … 10°/10 cm (each ground-truth
object against the nearest prediction of its class, :mod:`demopose.evaluation.object_hits`), also written to
``<out>/objects_within.json``, after the per-object table of ``demopose test`` (for up to 20 frames, or with
``--per-object``).
"""

from __future__ import annotations

import argparse

HELP = "estimate object poses in RGB-D frames (NOCS frames or colour/depth PNGs + camera.json): JSON + overlays"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="NOCS frame (prefix or file), NOCS folder, HouseCat6D scene or root, or "
                                      "folder with camera.json")
    parser.add_argument("--checkpoint", help="model checkpoint (default: the bundled DeMo-Pose)")
    parser.add_argument("--detector", help="monocular detector checkpoint giving the objects and masks of a pose "
                                           "checkpoint (default: the checkpoint's own detector, else the bundled "
                                           "small detector)")
    parser.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    parser.add_argument("--masks", choices=("detector", "gt"), default="detector",
                        help="instance masks: the model's detector + depth (default) or the frame's ground truth")
    parser.add_argument("--score-threshold", type=float, default=0.3, help="minimum detection score")
    parser.add_argument("--max-frames", type=int, default=0, help="at most N frames of a folder (0: all)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="torch backend: bf16 runs the products under bfloat16 autocast (faster on CPUs with "
                             "AMX; poses differ slightly from fp32, which gives the same poses on every machine)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="inference runtime (onnxruntime: a .pt is exported once to ~/.cache/demopose/onnx; "
                             "or pass an exported .onnx as --checkpoint)")
    parser.add_argument("--per-object", action="store_true",
                        help="frames with ground truth: print the per-object table (every ground-truth object's "
                             "errors, as `demopose test` does) also for more than 20 frames")
    parser.add_argument("--no-progress", action="store_true")


def _sources(path, max_frames: int):
    """The frames of ``path`` (:class:`~demopose.data.registry.FrameRef`: ``name``, ``source`` naming the files,
    ``load()``), found by its dataset reader (:mod:`demopose.data.registry`)."""
    from demopose.data.registry import detect

    reader, layout = detect(path)
    refs = reader.frames(path, layout)
    return refs[:max_frames] if max_frames > 0 else refs


FOUND_WITHIN_CM = 10.0
"""A ground-truth object counts as found when a prediction of its class lies within this distance of it (the
largest translation threshold of the NOCS metrics, 10°10cm)."""


def missed_objects(errors: list[dict | None], frame, kept_gt: set[int] | None = None) -> list[dict]:
    """The ground-truth objects of ``frame`` no prediction found: none of their class has them as nearest
    ground truth within :data:`FOUND_WITHIN_CM` (``errors``: :func:`~demopose.evaluation.errors.nearest_gt_errors`
    of the predictions). ``kept_gt``: with ground-truth masks, the objects that had enough depth points to run."""
    import numpy as np

    gt = frame.ground_truth()
    found = {e["gt_index"] for e in errors if e is not None and e["translation_cm"] <= FOUND_WITHIN_CM}
    out = []
    for g in range(len(gt)):
        if g in found:
            continue
        if kept_gt is not None and g not in kept_gt:
            reason = "too few valid depth points in its mask to run the pose network"
        elif not any(e is not None and e["gt_index"] == g for e in errors):
            reason = "not detected (no prediction of its class nearest to it)"
        else:
            reason = f"the nearest prediction of its class is more than {FOUND_WITHIN_CM:g} cm away"
        c = int(gt.class_ids[g])
        out.append({"gt_index": g, "class_id": c, "class_name": frame.categories[c].name,
                    "t": np.round(gt.t[g], 6).tolist(), "size": np.round(gt.size[g], 6).tolist(), "reason": reason})
    return out


def _build_predictor(args):
    """The predictor of ``--checkpoint`` with its detector (``--detector``, or the bundled one where needed);
    errors name the command-line flags."""
    from pathlib import Path

    from demopose.engine.checkpoint import load_model
    from demopose.models.base import Detector
    from demopose.predictor import BUNDLED_CHECKPOINT, BUNDLED_DETECTOR, Predictor

    ckpt = args.checkpoint or BUNDLED_CHECKPOINT
    predictor = Predictor.from_checkpoint(ckpt, backend=args.backend, device=args.device,
                                          score_threshold=args.score_threshold, precision=args.precision)
    kind = type(predictor.model).__name__
    if predictor.detector is predictor.model:  # a monocular model: objects and poses from the image
        if args.masks == "gt":
            raise ValueError(f"--masks gt: {ckpt} is a monocular detector ({kind}), which finds the objects itself "
                             f"and takes no masks; leave out --masks gt, or pass a pose checkpoint (--checkpoint)")
        if args.detector:
            raise ValueError(f"--detector: {ckpt} is a monocular detector ({kind}) and takes no other detector; "
                             f"pass a pose checkpoint (gpv, cleanpose, demopose) as --checkpoint")
        return predictor, ckpt, None
    detector = None
    if args.masks == "detector" and (args.detector or predictor.detector is None):
        detector = args.detector or BUNDLED_DETECTOR
        if not Path(detector).is_file():
            raise FileNotFoundError(f"--detector: {detector}: no such file")
        det_model = load_model(detector, map_location=args.device)
        if not isinstance(det_model, Detector):
            raise ValueError(f"--detector: {detector} is a {type(det_model).__name__} checkpoint, not a monocular "
                             f"detector (mono); train one with `demopose train mono_synth_small`")
        try:
            predictor.set_detector(det_model)
        except ValueError as e:
            raise ValueError(f"--detector {detector}: {e}") from None
    elif args.detector:
        raise ValueError("--detector: not used with --masks gt (the ground-truth masks give the objects)")
    return predictor, ckpt, detector


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import numpy as np
    from tqdm.auto import tqdm

    from demopose.cli.test import PER_OBJECT_FRAMES
    from demopose.evaluation.errors import nearest_gt_errors
    from demopose.evaluation.object_hits import ObjectTally
    from demopose.io import write_json_atomic, write_png_atomic
    from demopose.pipeline import gt_instances
    from demopose.viz.draw import pose_overlay

    sources = _sources(args.input, args.max_frames)
    predictor, ckpt, detector = _build_predictor(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: is a file, not a folder (choose another output folder)")
    out.mkdir(parents=True, exist_ok=True)  # an unwritable output fails here, before any frame is computed
    skipped: list[str] = []
    empty: list[str] = []
    n_missed = 0
    tally = ObjectTally(predictor.categories)  # frames with ground truth: objects within 5°/2 cm … 10°/10 cm
    for i, ref in enumerate(tqdm(sources, desc="predict", unit="frame", disable=args.no_progress or len(sources) < 2)):
        name = ref.name
        try:  # a bad frame (unreadable, implausible camera data) is reported and skipped; the run goes on
            frame = ref.load()
            rgb, depth, K = frame.rgb, frame.depth, frame.K
            f = predictor.make_frame(rgb, depth, K, source=ref.source)
            has_gt = frame.poses is not None
            inst = None
            if args.masks == "gt":
                if not has_gt:
                    raise ValueError(f"--masks gt: {ref.source} has no ground truth (it needs NOCS frames with their "
                                     f"annotations); leave out --masks gt to use the detector")
                inst = gt_instances(frame)
            # frame i with seed eval.seed + i: the point sampling of `demopose test` on the same frames
            poses, used = predictor.predict_frame(f, inst, seed=predictor.seed + i)
        except (ValueError, FileNotFoundError) as e:
            skipped.append(str(e))
            tqdm.write(f"{name}: skipped: {e}", file=sys.stderr)
            continue
        objects = [o.to_dict() for o in predictor.objects(poses, used)]  # by decreasing score
        order = np.argsort(-poses.scores, kind="stable")  # the same order
        poses = poses.select(order)
        missed: list[dict] = []
        if has_gt:
            errors = nearest_gt_errors(poses, frame)
            for obj, err in zip(objects, errors):
                obj["error_vs_gt"] = err
            kept_gt = {int(g) for g in used.gt_index if g >= 0} if inst is not None else None
            missed = missed_objects(errors, frame, kept_gt)
            n_missed += len(missed)
            tally.add(poses, frame.ground_truth(), name)
        doc = {"frame": name, "input": str(args.input), "checkpoint": str(ckpt), "masks": args.masks,
               "detector": None if detector is None else str(detector), "K": np.round(K, 4).tolist(),
               "units": "metres; R maps object to camera (OpenCV axes)", "num_objects": len(objects),
               "objects": objects}
        if has_gt:
            doc["missed"] = missed
        write_json_atomic(out / f"{name}.json", doc)
        masks = used.masks[order] if len(used.masks) == len(order) else used.masks
        img = pose_overlay(rgb, poses, frame.ground_truth() if has_gt else None, K, predictor.categories, masks)
        write_png_atomic(out / f"{name}_overlay.png", img[:, :, ::-1])
        if not objects:
            empty.append(name)
            print(f"{name}: no object found" + (f" (detection score >= {args.score_threshold:g})"
                                                if args.masks == "detector" else ""))
        else:
            print(f"{name}: {len(objects)} object(s)")
        for o in objects:
            err = o.get("error_vs_gt")
            e = (f"  err {err['rotation_deg']:.1f}° {err['translation_cm']:.1f} cm IoU {err['iou3d']:.2f}"
                 if err else "")
            flag = "  (size clamped: predicted below 5 mm)" if o["size_clamped"] else ""
            print(f"  {o['class_name']:<8} {o['score']:.2f}  t = {np.round(o['t'], 3).tolist()} m  "
                  f"size = {np.round(o['size'], 3).tolist()} m{e}{flag}")
        for m in missed:
            print(f"  missed   {m['class_name']:<8} t = {np.round(m['t'], 3).tolist()} m: {m['reason']}")
    print(f"wrote {len(sources) - len(skipped)} JSON file(s) and overlay(s) to {out}")
    if empty:
        print(f"{len(empty)} of {len(sources)} frame(s) with no object: {', '.join(empty[:10])}"
              + (" ..." if len(empty) > 10 else ""))
    if n_missed:
        print(f"{n_missed} ground-truth object(s) missed (listed under 'missed' in the JSON files)")
    if tally.rows:
        if args.per_object or len(sources) <= PER_OBJECT_FRAMES:
            print(tally.format_rows())
        print(tally.format())
        write_json_atomic(out / "objects_within.json", {"checkpoint": str(ckpt), "masks": args.masks,
                                                         "summary": tally.summary(), "objects": tally.rows})
    if skipped:
        print(f"error: {len(skipped)} of {len(sources)} frame(s) skipped:", file=sys.stderr)
        for msg in skipped:
            print(f"  {msg}", file=sys.stderr)
        return 1
    return 0
