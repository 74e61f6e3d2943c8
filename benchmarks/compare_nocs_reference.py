"""One-off check: our ``nocs`` mode against the published NOCS evaluation code (never run in CI).

Usage::

    python benchmarks/compare_nocs_reference.py /path/to/NOCS_CVPR2019 [--frames 300]

The folder must be a checkout of hughw19/NOCS_CVPR2019 (only its ``utils.py`` is used; its heavy
imports — tensorflow, pycocotools, ICP, ... — are replaced by empty stub modules, since the metric
functions do not use them). Random REAL275-like frames (``bench_eval.make_frames``) are scored by
``utils.compute_degree_cm_mAP`` (IoU 0..1 step 0.01, 0..60°, 0..10 cm step 0.5,
``use_matches_for_pose=True``) and by :class:`demopose.evaluation.NOCSEvaluator` (``nocs`` mode); the
script prints the largest difference over all headline metrics (per category and mean) and over the
full curves. Nothing from that repository is copied here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_eval import make_frames  # noqa: E402

from demopose.categories import NOCS_REAL  # noqa: E402
from demopose.evaluation import HEADLINE_IOU, HEADLINE_POSE, FrameResult, NOCSEvaluator, frame_to_dict  # noqa: E402

_STUBS = ("tensorflow", "scipy.misc", "skimage", "skimage.color", "ICP", "aligning", "pycocotools",
          "pycocotools.cocoeval", "pycocotools.mask")


def load_published_utils(checkout: Path) -> types.ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    for name in _STUBS:
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.estimateSimilarityTransform = None
            mod.COCOeval = None
            sys.modules[name] = mod
    sys.path.insert(0, str(checkout))
    import utils  # the published module

    return utils


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkout", type=Path)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--round-scores", type=int, default=None,
                    help="round scores to this many decimals (ties within and across frames)")
    args = ap.parse_args()
    utils = load_published_utils(args.checkout)
    frames = make_frames(args.frames, seed=args.seed)
    if args.round_scores is not None:
        for p, _ in frames:
            p.scores = np.round(p.scores, args.round_scores)
    dicts = [frame_to_dict(FrameResult(f"frame{i}", p, g)) for i, (p, g) in enumerate(frames)]
    for d in dicts:
        d["gt_handle_visibility"] = d["gt_handle_visibility"].astype(np.int64)
    iou_t = [i / 100 for i in range(101)]
    deg_t = list(range(61))
    cm_t = [i / 2 for i in range(21)]
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        iou_aps, pose_aps = utils.compute_degree_cm_mAP(
            dicts, ["BG", *NOCS_REAL.names], tmp, degree_thresholds=deg_t, shift_thresholds=cm_t,
            iou_3d_thresholds=iou_t, iou_pose_thres=0.1, use_matches_for_pose=True)
    ev = NOCSEvaluator(NOCS_REAL, "nocs")
    for p, g in frames:
        ev.process(p, g)
    ev.evaluate()
    res = ev.results["nocs"]
    ours_iou = np.concatenate([res.iou_ap, res.mean_iou_ap[None]])
    ours_pose = np.concatenate([res.pose_ap, res.mean_pose_ap[None]])
    theirs_iou, theirs_pose = iou_aps[1:], pose_aps[1:]
    names = [*NOCS_REAL.names, "mean"]
    worst = 0.0
    print(f"{'':10}" + "".join(f"{k:>20}" for k in [*HEADLINE_IOU, *HEADLINE_POSE]))
    for c, name in enumerate(names):
        cells = []
        for thr in HEADLINE_IOU.values():
            k = iou_t.index(thr)
            cells.append((ours_iou[c, k], theirs_iou[c, k]))
        for deg, cm in HEADLINE_POSE.values():
            d, s = deg_t.index(int(deg)), cm_t.index(cm)
            cells.append((ours_pose[c, d, s], theirs_pose[c, d, s]))
        worst = max(worst, *(abs(a - b) for a, b in cells))
        print(f"{name:10}" + "".join(f"{100 * a:9.4f}/{100 * b:9.4f} " for a, b in cells))
    print(f"frames: {args.frames}; GT: {sum(len(g) for _, g in frames)}; predictions: {sum(len(p) for p, _ in frames)}")
    print(f"max |ours - published| over headline metrics: {worst:.3e}")
    print(f"max |ours - published| over full IoU curves: {np.nanmax(np.abs(ours_iou - theirs_iou)):.3e}")
    print(f"max |ours - published| over full pose grid: {np.nanmax(np.abs(ours_pose - theirs_pose)):.3e}")


if __name__ == "__main__":
    main()
