"""Generate a synthetic RGB-D dataset in the NOCS layout (CAMERA or Real style).

Procedural objects of the six NOCS categories plus distractors on a textured table, random cameras
and lights, rendered by Embree ray casting, with structured-light depth noise and colour noise (off
with --no-noise). Frame i is a function of (--seed, --split, i) only: the output is the same for any
--workers, and an interrupted run is completed by running the same command again.

Generator version 3 (the default, --preset v3) is version 2 plus object shape and size variety: sizes
(NOCS scale) and proportions per category around the REAL275 / CAMERA mean sizes, laptop lids opened
70-150 degrees, mug handles of several kinds and sizes, cameras with lenses of several lengths and
diameters or with a body cap only, bottle shoulders and bowl walls of several profiles.
Version 2 (--preset v2) randomises materials (per-pixel procedural textures, gloss, dark objects), lights,
backgrounds and clutter, camera distance and angle, and models more sensor artefacts (projector shadow,
flying pixels, edge erosion, a border band without depth, specular holes; exposure, saturation, motion
blur, vignetting, JPEG); --preset v2 and --preset v1 make generator version 2's and 1's frames bit for
bit. Each knob below overrides the preset (the shape knobs need version 3); every setting is recorded in
<split>_synth.json, with the generator version of the frames (the preset's)
(docs/synthetic_data.md: the defaults and the statistics behind them).

Examples:
  demopose synth data/synth --frames 1000 --workers 2                 # CAMERA/train/...
  demopose synth data/synth --frames 200 --style real --split test    # Real/test/scene_k/...
  demopose synth data/v1 --frames 200 --preset v1                     # generator version 1's frames
  demopose synth data/s --frames 100 --lid-angle 90,120 --size-range can=0.9,1.1 --lens-share 1
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


def _names(allowed: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(k.strip() for k in text.split(",") if k.strip())
        if not names or set(names) - set(allowed):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {allowed}, got {text!r}")
        return names
    return parse


def _kinds(text: str) -> tuple[str, ...]:
    from demopose.synth.backgrounds import BACKGROUND_KINDS

    return _names(BACKGROUND_KINDS)(text)


def _handle_kinds(text: str) -> tuple[str, ...]:
    from demopose.synth.settings import HANDLE_KINDS

    return _names(HANDLE_KINDS)(text)


def _bottle_shoulders(text: str) -> tuple[str, ...]:
    from demopose.synth.settings import BOTTLE_SHOULDERS

    return _names(BOTTLE_SHOULDERS)(text)


def _category_range(text: str) -> tuple[str, tuple[float, float]]:
    from demopose.synth.settings import SHAPE_CATEGORIES

    cat, _, rest = text.partition("=")
    if cat.strip() not in SHAPE_CATEGORIES or not rest:
        raise argparse.ArgumentTypeError(f"expected CATEGORY=LOW,HIGH with CATEGORY one of {SHAPE_CATEGORIES}, "
                                         f"got {text!r}")
    lo, hi = _range(float)(rest)
    if lo <= 0:
        raise argparse.ArgumentTypeError(f"expected 0 < LOW <= HIGH, got {text!r}")
    return cat.strip(), (lo, hi)


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

# version-3 shape knobs (settings.ShapeVariety); the per-category ones may be repeated
SHAPE_KNOBS: dict[str, tuple[str, object, str]] = {
    "--size-range": ("sizes", _category_range,
                     "repeatable: object diagonal (NOCS scale) as a multiple of the REAL275 "
                     "mean size's diagonal (v3: 0.8,1.2 for every category)"),
    "--aspect-range": ("aspects", _category_range,
                       "repeatable: main proportion; bottle/bowl/can height/diameter, mug "
                       "height/body diameter, camera height/width, laptop base depth/width (v3: bottle=2,3.25 "
                       "bowl=0.32,0.58 camera=0.56,0.98 can=1.32,2.65 laptop=0.62,0.78 mug=0.58,1.64)"),
    "--lid-angle": ("lid_angle", _range(float), "laptop lid opening LOW,HIGH degrees (90 = upright; v3: 70,150)"),
    "--handle-kinds": ("handle_kinds", _handle_kinds,
                       "mug handle kinds drawn from, of round,square,ear (v3: all three)"),
    "--handle-reach": ("handle_reach", _range(float),
                       "mug handle reach LOW,HIGH as a multiple of the body diameter (v3: 0.22,0.53)"),
    "--handle-thickness": ("handle_thickness", _range(float),
                           "mug handle tube radius LOW,HIGH as a multiple of the mug height (v3: 0.04,0.08)"),
    "--lens-share": ("lens_share", _share, "share of cameras with a lens barrel; the others show a lens mount "
                                           "with a body cap (v3: 0.67)"),
    "--lens-length": ("lens_length", _range(float),
                      "camera lens length LOW,HIGH as a multiple of the body width (v3: 0.25,0.85)"),
    "--lens-diameter": ("lens_diameter", _range(float),
                        "camera lens diameter LOW,HIGH as a multiple of the body height (v3: 0.45,0.75)"),
    "--bottle-shoulders": ("bottle_shoulders", _bottle_shoulders,
                           "bottle shoulder profiles drawn from, of round,conical,flat,straight (v3: all four)"),
    "--bowl-flare": ("bowl_flare", _range(float),
                     "bowl wall curve exponent LOW,HIGH (<1 steep, >1 flared; v3: 0.5,2)"),
}


def settings_from_args(args: argparse.Namespace) -> dict:
    """``{"preset", "scene", "randomization", "depth", "color", "shapes"}`` for :class:`SynthConfig`: the
    preset's settings with every knob given on the command line replacing its value.

    Raises:
        ValueError: a shape knob with a preset before version 3 (which has no shape settings).
    """
    from dataclasses import replace

    from demopose.synth.settings import preset

    groups = dict(zip(("scene", "randomization", "depth", "color", "shapes"), preset(args.preset)))
    for flag, (group, name, _t, _h) in KNOBS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            groups[group] = replace(groups[group], **{name: value})
    for flag, (name, _t, _h) in SHAPE_KNOBS.items():
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is None:
            continue
        if groups["shapes"] is None:
            raise ValueError(f"{flag}: a generator version-3 shape knob; --preset {args.preset} has no shape "
                             "settings (use --preset v3, the default)")
        if name in ("sizes", "aspects"):
            groups["shapes"] = groups["shapes"].replace_ranges(name, dict(value))
        else:
            groups["shapes"] = replace(groups["shapes"], **{name: value})
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
    parser.add_argument("--preset", choices=("v1", "v2", "v3"), default="v3",
                        help="generator version whose defaults to use (default v3; v2 and v1 reproduce version-2 and "
                             "version-1 frames bit for bit, and the split is recorded as that version)")
    knobs = parser.add_argument_group("generator knobs (override the preset; docs/synthetic_data.md)")
    for flag, (_g, _n, typ, text) in KNOBS.items():
        knobs.add_argument(flag, type=typ, default=None, help=text)
    shapes = parser.add_argument_group("version-3 shape knobs (override --preset v3; docs/synthetic_data.md)")
    for flag, (name, typ, text) in SHAPE_KNOBS.items():
        if name in ("sizes", "aspects"):
            shapes.add_argument(flag, type=typ, action="append", default=None, metavar="CATEGORY=LOW,HIGH",
                                help=text)
        else:
            shapes.add_argument(flag, type=typ, default=None, help=text)


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
