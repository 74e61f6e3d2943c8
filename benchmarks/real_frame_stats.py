"""Sensor and appearance statistics of the real REAL275 fixture frame beside generated frames.

The generator's defaults (``docs/synthetic_data.md``) are chosen by matching these measurable statistics,
never by a pose score on the fixture (``../shared/MEASURE.md``). For each frame (REAL-layout files:
``_color.png``, ``_depth.png`` uint16 mm, ``_mask.png``):

* depth holes: the share of pixels without depth overall, on the support plane (table / floor region:
  pixels whose back-projected point lies within 1.5 cm of the RANSAC plane, closed by a 15 px
  morphological closing so that holes inside it count, objects excluded), on the object masks, and in
  5 px bands just left / right of the object masks; the share of isolated hole pixels (no other hole
  in their 3×3 neighbourhood: speckle) (a projector shadow falls on one side; the
  object masks are the ground-truth objects only, distractors and clutter count as background); the width
  of the leading / trailing image columns that are mostly (>= 80 %) without depth;
* depth noise against depth: on the support plane, the standard deviation of the residual of a least
  squares plane fitted to each 9×9 px window (valid pixels only), its median per 0.2 m depth bin;
* flying pixels: along rows, closer than 1.3 m, the share of depth-discontinuity pixels (a jump > 3 cm
  between the two neighbours) whose depth lies strictly between its neighbours' (more than 1 cm from both);
* colour: per-channel mean and standard deviation (0..255), mean HSV saturation and value, a
  brightness histogram (8 bins of V), edge density (share of Canny edge pixels, thresholds 50/150),
  sharpness (variance of the Laplacian of the grey image), corner-to-centre brightness ratio
  (vignetting) and the share of pixels saturated at 255.

Run: ``python benchmarks/real_frame_stats.py --frames 20`` (generates 20 REAL-style 640×480 frames of
each preset, seed 11, into a temporary folder, ``--workers 1``); writes
``benchmarks/results/real_frame_stats.json`` with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import cv2
import numpy as np

from demopose.geometry.camera import REAL_INTRINSICS
from demopose.io import write_json_atomic

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "nocs_sample" / "Real" / "test" / "scene_1"
if not FIXTURE.is_dir():
    FIXTURE = Path("/work/shared/fixtures/nocs_sample/Real/test/scene_1")


def read_frame(stem: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(color (H, W, 3) uint8 RGB, depth (H, W) float32 metres, objects (H, W) bool)`` of a REAL-layout frame."""
    color = cv2.imread(f"{stem}_color.png", cv2.IMREAD_COLOR)[..., ::-1]
    depth = cv2.imread(f"{stem}_depth.png", cv2.IMREAD_UNCHANGED)
    if depth.ndim == 3:  # CAMERA encoding
        depth = depth[..., 1].astype(np.int32) * 256 + depth[..., 2]
    mask = cv2.imread(f"{stem}_mask.png", cv2.IMREAD_UNCHANGED)
    if mask.ndim == 3:
        mask = mask[..., 2]
    return np.ascontiguousarray(color), depth.astype(np.float32) / 1000.0, mask != 255


def _points(depth: np.ndarray) -> np.ndarray:
    K = REAL_INTRINSICS.resized(depth.shape[1], depth.shape[0])
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]].astype(np.float32)
    return np.stack([(u - K.cx) * depth / K.fx, (v - K.cy) * depth / K.fy, depth], -1)


def support_plane(depth: np.ndarray, objects: np.ndarray, rng: np.random.Generator,
                  iters: int = 300, tol: float = 0.015) -> np.ndarray:
    """``(H, W)`` bool support-plane region (RANSAC plane inliers, closed, objects excluded)."""
    P = _points(depth)
    ok = (depth > 0) & ~objects
    idx = np.flatnonzero(ok)
    pts = P.reshape(-1, 3)[idx]
    best, best_n = None, 0
    for _ in range(iters):
        a, b, c = pts[rng.choice(len(pts), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-9:
            continue
        n /= np.linalg.norm(n)
        sub = pts[:: max(len(pts) // 20000, 1)]
        cnt = int((np.abs((sub - a) @ n) < tol).sum())
        if cnt > best_n:
            best, best_n = (a, n), cnt
    a, n = best
    inl = np.zeros(depth.size, bool)
    inl[idx] = np.abs((pts - a) @ n) < tol
    inl = inl.reshape(depth.shape).astype(np.uint8)
    closed = cv2.morphologyEx(inl, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8)) > 0
    return closed & ~objects


def plane_residual_by_depth(depth: np.ndarray, region: np.ndarray, win: int = 9) -> dict[str, float]:
    """Median per 0.2 m depth bin of the residual std of a plane fitted to each ``win``×``win`` window."""
    H, W = depth.shape
    P = _points(depth)
    out: dict[str, list[float]] = {}
    for y in range(0, H - win, win):
        for x in range(0, W - win, win):
            m = region[y:y + win, x:x + win] & (depth[y:y + win, x:x + win] > 0)
            if m.sum() < win * win * 0.8:
                continue
            p = P[y:y + win, x:x + win][m].astype(np.float64)
            A = np.c_[p[:, 0], p[:, 1], np.ones(len(p))]
            coef, *_ = np.linalg.lstsq(A, p[:, 2], rcond=None)
            r = p[:, 2] - A @ coef
            z = float(np.median(p[:, 2]))
            lo = np.floor(z / 0.2) * 0.2
            out.setdefault(f"{lo:.1f}-{lo + 0.2:.1f}", []).append(float(r.std()))
    return {k: round(float(np.median(v)) * 1000, 3) for k, v in sorted(out.items()) if len(v) >= 5}


def depth_stats(depth: np.ndarray, objects: np.ndarray, rng: np.random.Generator) -> dict:
    """Hole rates, noise against depth and flying pixels of one depth map (metres)."""
    H, W = depth.shape
    hole = depth <= 0
    plane = support_plane(depth, objects, rng)
    to_right = np.zeros_like(objects)  # an object pixel within 5 px to the right
    to_left = np.zeros_like(objects)
    for s in range(1, 6):
        to_right[:, :-s] |= objects[:, s:]
        to_left[:, s:] |= objects[:, :-s]
    left_band = to_right & ~to_left & ~objects  # just left of an object (and not between two)
    right_band = to_left & ~to_right & ~objects
    col_hole = hole.mean(0)

    def lead(c: np.ndarray) -> int:
        n = 0
        while n < len(c) and c[n] >= 0.8:
            n += 1
        return n

    # flying pixels along rows
    zl, zr = np.roll(depth, 1, 1), np.roll(depth, -1, 1)
    valid3 = (depth > 0) & (zl > 0) & (zr > 0) & (depth < 1.3)  # table distance (no far grazing floor)
    jump = valid3 & (np.abs(zl - zr) > 0.03)
    lo, hi = np.minimum(zl, zr), np.maximum(zl, zr)
    between = jump & (depth > lo + 0.01) & (depth < hi - 0.01)
    isolated = hole & (cv2.blur(hole.astype(np.float32), (3, 3)) < 0.2)  # no other hole in its 3x3
    return {
        "hole_rate_overall": round(float(hole.mean()), 4),
        "isolated_hole_rate": round(float(isolated.mean()), 5),
        "hole_rate_support_plane": round(float(hole[plane].mean()), 4) if plane.any() else None,
        "support_plane_share": round(float(plane.mean()), 3),
        "hole_rate_objects": round(float(hole[objects].mean()), 4) if objects.any() else None,
        "hole_rate_left_of_objects_5px": round(float(hole[left_band].mean()), 4) if left_band.any() else None,
        "hole_rate_right_of_objects_5px": round(float(hole[right_band].mean()), 4) if right_band.any() else None,
        "no_depth_columns_left": lead(col_hole),
        "no_depth_columns_right": lead(col_hole[::-1]),
        "plane_residual_mm_by_depth_m": plane_residual_by_depth(depth, plane),
        "flying_pixel_share_of_jumps": round(float(between.sum() / max(jump.sum(), 1)), 4),
        "depth_m_p5_p50_p95": [round(float(v), 3) for v in np.percentile(depth[~hole], [5, 50, 95])],
    }


def color_stats(rgb: np.ndarray) -> dict:
    """Appearance statistics of one ``(H, W, 3)`` uint8 RGB image."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    H, W = grey.shape
    c = grey[H // 4:3 * H // 4, W // 4:3 * W // 4].mean()
    corners = np.concatenate([grey[:H // 8, :W // 8].ravel(), grey[:H // 8, -W // 8:].ravel(),
                              grey[-H // 8:, :W // 8].ravel(), grey[-H // 8:, -W // 8:].ravel()]).mean()
    hist = np.histogram(hsv[..., 2], bins=8, range=(0, 256))[0] / grey.size
    return {
        "mean_rgb": [round(float(v), 1) for v in rgb.reshape(-1, 3).mean(0)],
        "std_rgb": [round(float(v), 1) for v in rgb.reshape(-1, 3).std(0)],
        "saturation_mean": round(float(hsv[..., 1].mean()) / 255, 3),
        "value_mean": round(float(hsv[..., 2].mean()) / 255, 3),
        "value_hist_8": [round(float(v), 3) for v in hist],
        "edge_density": round(float((cv2.Canny(grey, 50, 150) > 0).mean()), 4),
        "sharpness_laplacian_var": round(float(cv2.Laplacian(grey, cv2.CV_64F).var()), 1),
        "corner_to_centre_brightness": round(float(corners / max(c, 1e-6)), 3),
        "saturated_255_share": round(float((rgb == 255).any(-1).mean()), 4),
    }


def frame_stats(stem: Path, rng: np.random.Generator) -> dict:
    color, depth, objects = read_frame(stem)
    return {"depth": depth_stats(depth, objects, rng), "color": color_stats(color)}


def summarise(frames: list[dict]) -> dict:
    """Mean (and min/max) of every scalar statistic over frames; per-bin means of the noise curve."""
    def walk(vals: list) -> object:
        v0 = vals[0]
        if isinstance(v0, dict):
            keys = sorted({k for v in vals for k in v})
            return {k: walk([v[k] for v in vals if k in v]) for k in keys}
        if isinstance(v0, list):
            return [round(float(np.mean([v[i] for v in vals])), 4) for i in range(len(v0))]
        nums = [float(v) for v in vals if v is not None]
        if not nums:
            return None
        return {"mean": round(float(np.mean(nums)), 4), "min": round(min(nums), 4), "max": round(max(nums), 4)}
    return walk(frames)


def generated(preset: str, n: int, seed: int, folder: str) -> list[Path]:
    from demopose.synth.generate import SynthConfig, generate
    from demopose.synth.writer import frame_paths

    cfg = SynthConfig(out=folder, frames=n, seed=seed, style="real", split="stats", preset=preset,
                      models_per_category=4, mpl_points=64)
    generate(cfg, progress=False)
    return [frame_paths(folder, "real", "stats", i, cfg.frames_per_scene).stem for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20, help="generated frames per preset")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--presets", default="v1,v2")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "real_frame_stats.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    result = {
        "command": f"python benchmarks/real_frame_stats.py --frames {args.frames} --seed {args.seed} "
                   f"--presets {args.presets}",
        "fixture": {"frame": "REAL275 test scene_1/0000", **frame_stats(FIXTURE / "0000", rng)},
    }
    from demopose.synth.generate import GENERATOR_VERSION

    for p in args.presets.split(","):
        with tempfile.TemporaryDirectory() as d:
            stems = generated(p, args.frames, args.seed, d)
            result[f"generated_{p}"] = {"frames": args.frames, "seed": args.seed, "preset": p,
                                        "generator_version_code": GENERATOR_VERSION, "size": [640, 480],
                                        **summarise([frame_stats(s, rng) for s in stems])}
    import torch

    cpu, flags = platform.machine(), []
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name"))
        have = set(next(ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")))
        flags = [f for f in ("amx_tile", "avx512_bf16", "avx2") if f in have]
    except (OSError, StopIteration):
        pass
    result["machine"] = {"cpus": os.cpu_count(), "cpu": cpu, "cpu_flags": flags,
                         "python": platform.python_version(), "torch": torch.__version__,
                         "platform": platform.platform()}
    write_json_atomic(args.out, result)
    fx = result["fixture"]
    print(f"fixture: holes {fx['depth']['hole_rate_overall']:.3f} overall, "
          f"{fx['depth']['hole_rate_support_plane']:.3f} plane, {fx['depth']['hole_rate_objects']:.3f} objects; "
          f"saturation {fx['color']['saturation_mean']:.2f}, edges {fx['color']['edge_density']:.3f}")
    for p in args.presets.split(","):
        g = result[f"generated_{p}"]
        print(f"{p}: holes {g['depth']['hole_rate_overall']['mean']:.3f} overall, "
              f"{g['depth']['hole_rate_support_plane']['mean']:.3f} plane, "
              f"{g['depth']['hole_rate_objects']['mean']:.3f} objects; "
              f"saturation {g['color']['saturation_mean']['mean']:.2f}, edges {g['color']['edge_density']['mean']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
