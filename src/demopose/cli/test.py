"""Evaluate a checkpoint on a dataset split: NOCS results pickles, the metrics table and plots.

Example::

    demopose test gpv_synth_small runs/gpv_synth_small/last.pt DATA --out runs/gpv_synth_small/test

Writes ``results/results_<frame>.pkl`` (NOCS format, scoreable by ``demopose eval`` and by other
toolkits; earlier pkls in that folder are removed first, so it holds this run's frames only), ``metrics.json``,
``objects.json`` (every ground-truth object's errors against the nearest prediction of its class,
:mod:`demopose.evaluation.object_hits`) and ``ap_curves_<mode>.png`` into ``--out``, and prints the AP table,
every ground-truth object's errors (a table: frame, category, rotation error in °, translation error in cm, within
10°/5 cm, within 5°/5 cm, found or missed; for up to 20 frames, or with ``--per-object``) and the count of objects
within 5°/2 cm … 10°/10 cm. ``--overlays N`` draws the first N frames as ``demopose predict`` does (predictions
solid with axes, ground truth dashed white) into ``<out>/overlays``.

On a real NOCS folder (the REAL275 layout: ``Real/test/scene_<k>``, ``gts/real_test``, ``obj_models/real_test``)::

    demopose test demopose_synth_small src/demopose/assets/demopose_synth_small.pt NOCS eval.masks=detector \
        --overlays 5 --out runs/real_test

The model is rebuilt as the checkpoint was trained (its stored ``config.model``; CONFIG's model section only for
checkpoints without one), so a packaged config runs a checkpoint trained with other model options and needs none
of the weight files its builder reads at training time (a detector, a distillation teacher). CONFIG gives the
data, the point count and the evaluation settings. ``eval.masks=detector`` takes the objects and masks from a
monocular detector (``--detector CKPT``; default: the model's own, else the small detector shipped in the
package), as ``demopose predict`` does.

The split is ``data.test_subset`` (``real_test`` in the synthetic presets, whose training validates on
``real_val``; REAL275 configs: ``real_test``, which their training also validates on, the published practice).
"""

from __future__ import annotations

import argparse

HELP = "evaluate a checkpoint on a dataset split: results pkls, NOCS metrics table, per-object errors, plots"

PER_OBJECT_FRAMES = 20
"""Up to this many frames the per-object table is printed without ``--per-object``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="config file or packaged config name (the one the model was trained with)")
    parser.add_argument("checkpoint", help="checkpoint file (last.pt / best.pt)")
    parser.add_argument("data", help="dataset root")
    parser.add_argument("overrides", nargs="*",
                        help="dotted overrides: key.sub=value (e.g. data.test_subset=camera_val)")
    parser.add_argument("--out", help="output folder (default: <checkpoint folder>/test_<subset>)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--max-frames", type=int, default=0, help="evaluate at most this many frames (0: all)")
    parser.add_argument("--detector", help="with eval.masks=detector: monocular detector checkpoint giving the "
                                           "objects and masks (default: the model's own, else the bundled one)")
    parser.add_argument("--score-threshold", type=float, default=0.3,
                        help="with eval.masks=detector: minimum detection score")
    parser.add_argument("--per-object", action="store_true",
                        help=f"print every ground-truth object's errors (a table) also for more than "
                             f"{PER_OBJECT_FRAMES} frames (up to that many frames it is always printed)")
    parser.add_argument("--overlays", type=int, default=0, metavar="N",
                        help="write the overlay pictures of `demopose predict` (predictions solid with axes, ground "
                             "truth dashed white) for the first N frames to <out>/overlays (default 0: none)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    from demopose.categories import get_table
    from demopose.engine import load_config
    from demopose.engine.build import build_frames, build_mask_source, limit_frames
    from demopose.engine.dist import resolve_device
    from demopose.evaluation import NOCSEvaluator
    from demopose.evaluation.object_hits import ObjectTally
    from demopose.evaluation.report import format_table, metrics_document
    from demopose.io import write_json_atomic
    from demopose.pipeline import run_inference

    cfg = load_config(args.config, [*args.overrides, f"data.root={args.data}"])
    device = resolve_device(args.device)
    model = _load_model(cfg, args)
    model.to(device)
    subset = test_subset(cfg)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"test_{subset}"
    frames = build_frames(cfg, subset)
    idx = limit_frames(len(frames), args.max_frames)
    table = get_table(cfg.data.categories)
    ev = NOCSEvaluator(table, iou_mode=str(cfg.eval.iou))
    stale = sorted((out / "results").glob("results_*.pkl"))
    for p in stale:  # the folder is this run's output: pkls of an earlier run would mix into `demopose eval`
        p.unlink()
    t0 = time.perf_counter()
    if str(cfg.eval.get("masks", "gt")) == "detector":
        mask_source = _detector_masks(model, args, device)
    else:
        if args.detector:
            raise ValueError("--detector: only used with eval.masks=detector")
        mask_source = build_mask_source(cfg)
    if args.overlays < 0:
        raise ValueError(f"--overlays: expected a number of frames >= 0, got {args.overlays}")
    tally = ObjectTally(table)  # every ground-truth object against the nearest prediction of its class
    overlays = _Overlays(out / "overlays", args.overlays, table)

    def on_frame(frame, pred, gt) -> None:
        tally.add(pred, gt, frame.frame_id or "")
        overlays.add(frame, pred, gt)

    metrics = run_inference(model, frames, mask_source, ev, results_dir=out / "results",
                            n_points=int(cfg.data.n_points), seed=int(cfg.eval.seed), device=device,
                            progress=not args.no_progress, indices=idx, on_frame=on_frame)
    seconds = time.perf_counter() - t0  # frame loading, masks, sampling, network, scoring, pkl writes
    timing = {"frames": len(idx), "seconds": round(seconds, 3), "fps": round(len(idx) / max(seconds, 1e-9), 2),
              "torch_threads": torch.get_num_threads(), "device": str(device),
              "includes": "frame decode, masks, point sampling, network, evaluation, results pkl writes"}
    for res in ev.results.values():
        print(format_table(res))
    det2d = {k: v for k, v in metrics.items() if k.startswith("det2d/")}  # self-detecting models (mono)
    for k, v in sorted(det2d.items()):
        print(f"{k}: {v:.4f}")
    if tally.rows and (args.per_object or len(idx) <= PER_OBJECT_FRAMES):
        print(tally.format_rows())
    elif tally.rows:
        print(f"({tally.summary()['objects']} objects in {len(idx)} frames: every object's errors are in "
              f"{out / 'objects.json'}; --per-object prints them)")
    print(tally.format())
    write_json_atomic(out / "objects.json", {"summary": tally.summary(), "objects": tally.rows})
    extra = {"detection_2d": det2d} if det2d else {}
    extra["objects_within"] = tally.summary()
    write_json_atomic(out / "metrics.json", metrics_document(ev.results, results=str(out / "results"),
                                                             num_files=len(idx), category_table=table.name,
                                                             checkpoint=str(args.checkpoint),
                                                             config=str(args.config), timing=timing,
                                                             **extra))
    if not args.no_plots:
        from demopose.evaluation.plots import plot_ap_curves

        for mode, res in ev.results.items():
            plot_ap_curves(res, out / f"ap_curves_{mode}.png")
    print(f"wrote {out / 'metrics.json'} and {len(idx)} results pkls under {out / 'results'}")
    if overlays.written:
        print(f"wrote {len(overlays.written)} overlay picture(s) to {overlays.folder}")
    return 0


class _Overlays:
    """``--overlays N``: the picture of ``demopose predict`` (:func:`~demopose.viz.draw.pose_overlay`) for the
    first ``limit`` frames, ``<folder>/<frame id>_overlay.png``; the folder's overlays of an earlier run are
    removed first (it holds this run's pictures only)."""

    def __init__(self, folder, limit: int, categories) -> None:
        self.folder, self.limit, self.categories = folder, int(limit), categories
        self.written: list = []
        if self.limit > 0 and folder.is_dir():
            for p in sorted(folder.glob("*_overlay.png")):
                p.unlink()

    def add(self, frame, pred, gt) -> None:
        """Draw one frame's predictions (a PoseSet) and ground truth (a PoseSet, empty without any)."""
        if len(self.written) >= self.limit:
            return
        from demopose.io import write_png_atomic
        from demopose.viz.draw import pose_overlay

        name = (frame.frame_id or f"frame_{len(self.written):06d}").replace("/", "_")
        img = pose_overlay(frame.rgb, pred, gt if frame.poses is not None else None, frame.K, self.categories)
        path = self.folder / f"{name}_overlay.png"
        write_png_atomic(path, img[:, :, ::-1])  # RGB -> the BGR order of OpenCV's PNG writer
        self.written.append(path)


def test_subset(cfg) -> str:
    """The split ``demopose test`` scores: ``data.test_subset``, or for a config without one (a file of its own
    with no ``_base_``, written before the key existed) its ``data.val_subset``, which it was tested on then."""
    value = cfg.data.get("test_subset")
    return str(value if value is not None else cfg.data.val_subset)


def _load_model(cfg, args):
    """The model as the checkpoint was trained (its stored model config), else as CONFIG describes it."""
    import logging

    from demopose.engine.build import build_model_from_config
    from demopose.engine.checkpoint import load_checkpoint, load_model, load_weights
    from demopose.pipeline import inference_settings

    state = load_checkpoint(args.checkpoint)
    stored = state.get("config") if isinstance(state.get("config"), dict) else {}
    if (stored.get("model") or {}).get("name"):
        trained = inference_settings(stored)["n_points"]
        if stored.get("data", {}).get("n_points") and trained != int(cfg.data.n_points):
            logging.getLogger(__name__).warning(
                "%s was trained with data.n_points=%d, the test samples %d points per instance (data.n_points)",
                args.checkpoint, trained, int(cfg.data.n_points))
        return load_model(args.checkpoint)
    model = build_model_from_config(cfg)
    load_weights(model, args.checkpoint, f"model {cfg.model.name!r} of config {args.config}", state=state)
    return model


def _detector_masks(model, args, device):
    """eval.masks=detector: the mask source of ``demopose predict`` (--detector, the model's own, the bundled)."""
    from demopose.engine.checkpoint import load_model
    from demopose.models.base import Detector
    from demopose.pipeline import detector_instances, find_detector
    from demopose.predictor import BUNDLED_DETECTOR

    own = find_detector(model)
    if own is model:  # a monocular model finds its objects itself (run_inference ignores the mask source)
        return None
    if args.detector or own is None:
        path = args.detector or BUNDLED_DETECTOR
        det = load_model(path, map_location=device)
        if not isinstance(det, Detector):
            raise ValueError(f"--detector: {path} is a {type(det).__name__} checkpoint, not a monocular detector")
        return detector_instances(det, args.score_threshold, device=device)
    return detector_instances(own, args.score_threshold, device=device, keep_features=True)
