"""Generate a synthetic RGB-D dataset in the NOCS layout (CAMERA or Real style).

Procedural objects of the six NOCS categories plus distractors on a textured table, random cameras
and lights, rendered by Embree ray casting, with structured-light depth noise and colour noise (off
with --no-noise). Frame i is a function of (--seed, --split, i) only: the output is the same for any
--workers, and an interrupted run is completed by running the same command again.

Generator version 2 (the default, --preset v2) randomises materials (per-pixel procedural textures,
gloss, dark objects), lights, backgrounds and clutter, camera distance and angle, and models more sensor
artefacts (projector shadow, flying pixels, edge erosion, a border band without depth, specular holes;
exposure, saturation, motion blur, vignetting, JPEG); --preset v1 makes generator version 1's frames.
Each knob below overrides the preset; every setting is recorded in <split>_synth.json
(docs/synthetic_data.md: the defaults and the real-frame statistics behind them).

Examples:
  demopose synth data/synth --frames 1000 --workers 2                 # CAMERA/train/...
  demopose synth data/synth --frames 200 --style real --split test    # Real/test/scene_k/...
  demopose synth data/v1 --frames 200 --preset v1                     # generator version 1's frames
"""

from __future__ import annotations

import argparse

HELP = "generate synthetic RGB-D frames with NOCS ground truth in the NOCS CAMERA/Real layout"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    return w, h


def _range(cast):
    def parse(text: str) -> tuple:
        try:
            parts = [cast(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected LOW,HIGH such as 1,3, got {text!r}") from None
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2 or parts[0] > parts[1]:
            raise argparse.ArgumentTypeError(f"expected LOW,HIGH with LOW <= HIGH, got {text!r}")
        return tuple(parts)
    return parse


def _share(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {text!r}")
    return v


def _kinds(text: str) -> tuple[str, ...]:
    from demopose.synth.backgrounds import BACKGROUND_KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in BACKGROUND_KINDS]
    if not kinds or bad:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {BACKGROUND_KINDS}, got {text!r}")
    return kinds


# flag -> (settings group, field, type, help); a flag left out keeps the preset's value
KNOBS: dict[str, tuple[str, str, object, str]] = {
    "--textured": ("randomization", "textured", _share, "share of objects with a procedural texture"),
    "--specular": ("randomization", "specular", _share, "share of glossy objects"),
    "--dark-objects": ("randomization", "dark", _share, "share of dark objects (lose depth)"),
    "--lights": ("randomization", "lights", _range(int), "number of lights LOW,HIGH (the first casts shadows)"),
    "--clutter": ("randomization", "clutter", _range(int), "flat clutter items (boards, books, screens) LOW,HIGH"),
    "--table-textures": ("randomization", "table_textures", _kinds, "table texture kinds, comma-separated"),
    "--floor-textures": ("randomization", "floor_textures", _kinds, "floor texture kinds"),
    "--wall-textures": ("randomization", "wall_textures", _kinds, "wall texture kinds"),
    "--distance": ("scene", "distance", _range(float), "camera distance to the objects LOW,HIGH metres"),
    "--elevation": ("scene", "elevation", _range(float), "camera elevation above the table LOW,HIGH degrees"),
    "--distractors": ("scene", "distractors", _range(int), "distractor objects LOW,HIGH"),
    "--objects": ("scene", "objects", _range(int), "category objects LOW,HIGH"),
    "--projector-shadow": ("depth", "projector_shadow", lambda t: t.lower() in ("1", "on", "true", "yes"),
                           "on|off: no depth where the projector is occluded"),
    "--flying-pixels": ("depth", "flying_prob", _share, "share of edge pixels with a mixed depth"),
    "--edge-erosion": ("depth", "erosion_prob", _share, "share of silhouette pixels without depth"),
    "--border-band": ("depth", "border_band", _range(int), "band without depth on the left border, px LOW,HIGH"),
    "--specular-holes": ("depth", "specular_holes", _share, "depth loss on glossy surfaces facing the camera"),
    "--speckle": ("depth", "speckle_prob", _share, "share of random single-pixel depth holes"),
    "--exposure": ("color", "exposure", _range(float), "exposure change LOW,HIGH in EV"),
    "--saturation": ("color", "saturation", _range(float), "colour saturation factor LOW,HIGH"),
    "--vignetting": ("color", "vignetting", _range(float), "corner darkening LOW,HIGH (0..1)"),
    "--jpeg-quality": ("color", "jpeg_quality", _range(int), "JPEG quality LOW,HIGH (0,0: none)"),
    "--motion-blur": ("color", "motion_blur_prob", _share, "share of frames with motion blur"),
}


def settings_from_args(args: argparse.Namespace) -> dict:
    """``{"preset", "scene", "randomization", "depth", "color"}`` for :class:`SynthConfig`: the preset's
    settings with every knob given on the command line replacing its value."""
    from dataclasses import replace

    from demopose.synth.settings import preset

    groups = dict(zip(("scene", "randomization", "depth", "color"), preset(args.preset)))
    for flag, (group, name, _t, _h) in KNOBS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            groups[group] = replace(groups[group], **{name: value})
    return {"preset": args.preset, **groups}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="dataset root to write (created; an existing run is resumed)")
    parser.add_argument("--frames", type=int, required=True, help="number of frames")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="processes (0 = one per CPU core; default 1)")
    parser.add_argument("--style", choices=("camera", "real"), default="camera", help="layout (default camera)")
    parser.add_argument("--split", default="train", help="split name: train, val, test (default train)")
    parser.add_argument("--no-noise", action="store_true", help="clean depth and colour (no sensor noise)")
    parser.add_argument("--size", type=_size, default=(640, 480), help="image WIDTHxHEIGHT (default 640x480)")
    parser.add_argument("--models-per-category", type=int, default=30,
                        help="distinct procedural models per category in this split (default 30)")
    parser.add_argument("--frames-per-scene", type=int, default=100,
                        help="real style: frames per scene_<k> folder (default 100)")
    parser.add_argument("--renderer", choices=("embree", "torch"), default="embree", help="default embree")
    parser.add_argument("--user-meshes", default=None, metavar="DIR",
                        help="your own meshes as DIR/<category>/*.obj|glb|ply (y up; canonicalised and scaled), "
                             "mixed with the procedural ones")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--preset", choices=("v1", "v2"), default="v2",
                        help="generator version whose defaults to use (default v2; v1 reproduces version-1 frames)")
    knobs = parser.add_argument_group("generator knobs (override the preset; docs/synthetic_data.md)")
    for flag, (_g, _n, typ, text) in KNOBS.items():
        knobs.add_argument(flag, type=typ, default=None, help=text)


def run(args: argparse.Namespace) -> int:
    import os

    from demopose.synth.generate import SynthConfig, generate

    workers = args.workers if args.workers > 0 else (len(os.sched_getaffinity(0))
                                                     if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    cfg = SynthConfig(out=args.out, frames=args.frames, seed=args.seed, workers=workers, style=args.style,
                      split=args.split, noise=not args.no_noise, width=args.size[0], height=args.size[1],
                      models_per_category=args.models_per_category, frames_per_scene=args.frames_per_scene,
                      renderer=args.renderer, user_meshes=args.user_meshes, **settings_from_args(args))
    report = generate(cfg, progress=not args.no_progress)
    print(f"wrote {report.written} frames ({report.skipped} already complete) to {args.out} in "
          f"{report.seconds:.1f} s ({report.fps:.2f} frames/s)")
    return 0
