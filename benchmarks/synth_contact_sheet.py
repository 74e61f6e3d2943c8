"""Contact sheet of generated frames beside the real REAL275 fixture frame: ``docs/images/synth_contact_sheet.png``.

Each tile is a colour image above its depth map (colourised with the same 0.3-1.5 m scale, black = no
depth). The first tile is the real fixture frame (REAL275 test scene_1/0000), then ``--frames``
generated REAL-style frames of ``--preset`` (default v2, seed 21, 640×480, shown at ``--scale``).

Run: ``python benchmarks/synth_contact_sheet.py`` (generates 11 frames with ``--workers 1`` into a
temporary folder, about a minute on one core).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from demopose.io import write_png_atomic

FIXTURE = Path("/work/shared/fixtures/nocs_sample/Real/test/scene_1/0000")
_here = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "nocs_sample" / "Real" / "test" / "scene_1"
if _here.is_dir():
    FIXTURE = _here / "0000"


def tile(stem: Path, scale: float, label: str) -> np.ndarray:
    """``(h, w, 3)`` uint8 RGB: the colour image above the colourised depth, with ``label`` on the colour."""
    color = cv2.imread(f"{stem}_color.png", cv2.IMREAD_COLOR)
    depth = cv2.imread(f"{stem}_depth.png", cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0
    d8 = np.clip((depth - 0.3) / 1.2 * 255, 0, 255).astype(np.uint8)
    dc = cv2.applyColorMap(d8, cv2.COLORMAP_TURBO)
    dc[depth <= 0] = 0
    size = (round(color.shape[1] * scale), round(color.shape[0] * scale))
    c = cv2.resize(color, size, interpolation=cv2.INTER_AREA)
    d = cv2.resize(dc, size, interpolation=cv2.INTER_NEAREST)
    cv2.putText(c, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(c, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([c, d])[..., ::-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=11)
    ap.add_argument("--preset", default="v2")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "images" /
                                         "synth_contact_sheet.png"))
    args = ap.parse_args()
    from demopose.synth.generate import SynthConfig, generate
    from demopose.synth.writer import frame_paths

    tiles = [tile(FIXTURE, args.scale, "REAL275 (real)")]
    with tempfile.TemporaryDirectory() as d:
        cfg = SynthConfig(out=d, frames=args.frames, seed=args.seed, style="real", split="sheet", preset=args.preset,
                          models_per_category=6, mpl_points=64)
        generate(cfg, progress=False)
        for i in range(args.frames):
            tiles.append(tile(frame_paths(d, "real", "sheet", i).stem, args.scale, f"synth {args.preset} #{i}"))
    blank = np.zeros_like(tiles[0])
    while len(tiles) % args.cols:
        tiles.append(blank)
    rows = [np.hstack(tiles[r:r + args.cols]) for r in range(0, len(tiles), args.cols)]
    sheet = np.vstack(rows)
    write_png_atomic(args.out, np.ascontiguousarray(sheet[..., ::-1]))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}, {Path(args.out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
