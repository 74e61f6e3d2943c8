"""Draw ground-truth 3D boxes and axes of a frame, or a contact sheet of a folder's first frames.

FRAME_OR_FOLDER is a NOCS frame (prefix like .../scene_1/0000 or its _color.png), a NOCS scene,
split or dataset folder, a HouseCat6D scene/root folder, or a folder of your own colour + depth PNGs with a
camera.json (no annotations: the frames only). For a folder, the first N frames
(--max-frames, default 9) are tiled into one PNG with their frame ids as captions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "draw a frame (or a folder's first frames) with its ground-truth 3D boxes and axes into a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="FRAME_OR_FOLDER", help="NOCS frame prefix / _color.png, or a folder")
    parser.add_argument("-o", "--output", default=None,
                        help="output PNG (default: show_<name>.png in the current folder)")
    parser.add_argument("--max-frames", type=int, default=9, help="frames in a folder's contact sheet")
    parser.add_argument("--depth", default="auto", choices=("auto", "composed", "object"),
                        help="CAMERA depth source (only matters for pose recovery of train frames)")
    parser.add_argument("--no-masks", action="store_true", help="do not overlay instance masks")


def _load_frames(path: Path, max_frames: int, depth: str) -> list:
    """The first ``max_frames`` frames of ``path``, read by its dataset reader (:mod:`demopose.data.registry`)."""
    from demopose.data.registry import detect

    reader, layout = detect(path)
    return [ref.load() for ref in reader.frames(path, layout, depth=depth)[:max_frames]]


def run(args: argparse.Namespace) -> int:
    from demopose.io import write_png_atomic
    from demopose.viz.draw import contact_sheet, draw_frame

    if args.max_frames < 1:
        raise ValueError(f"--max-frames: expected >= 1, got {args.max_frames}")
    path = Path(args.path)
    frames = _load_frames(path, args.max_frames, args.depth)
    if not frames:
        raise FileNotFoundError(f"{path}: no frames found")
    images = [draw_frame(f, masks=not args.no_masks) for f in frames]
    if len(images) == 1 and not path.is_dir():
        out_img = images[0]
    else:
        out_img = contact_sheet(images, [f.frame_id for f in frames])
    name = path.name.removesuffix("_color.png").removesuffix(".png") or "frame"
    out = Path(args.output) if args.output else Path(f"show_{name}.png")
    write_png_atomic(out, out_img[:, :, ::-1])
    print(f"wrote {out} ({len(frames)} frame{'s' if len(frames) > 1 else ''})")
    return 0
