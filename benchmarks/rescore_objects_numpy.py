"""Rescore "objects within 10°/5 cm" from NOCS results pickles with plain NumPy, apart from the project's evaluator.

A cross-check of ``demopose test``'s ``objects.json`` (:mod:`demopose.evaluation.object_hits`): it reads the
pickles with :mod:`pickle` and shares no code with the package. For each ground-truth object, the prediction of its
class nearest in translation; the rotation is taken from ``RT[:3, :3]`` divided by the cube root of its
determinant (the ``nocs`` convention's scale); bottle (1), bowl (2), can (4) and a mug (6) whose handle is not
visible are scored by the angle between the y axes.

Usage::

    python benchmarks/rescore_objects_numpy.py RUN/test_detector/results
"""

from __future__ import annotations

import argparse
import glob
import os
import pickle

import numpy as np

Y_SYMMETRIC = {1, 2, 4}
MUG = 6


def _rotation(RT: np.ndarray) -> np.ndarray:
    M = np.asarray(RT, float)[:3, :3]
    return M / np.cbrt(np.linalg.det(M))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="folder of results_*.pkl files")
    args = ap.parse_args()
    thresholds = [(10, 5), (5, 5), (5, 2)]
    hits = dict.fromkeys(thresholds, 0)
    n = 0
    for path in sorted(glob.glob(os.path.join(args.results, "*.pkl"))):
        with open(path, "rb") as f:
            d = pickle.load(f)  # noqa: S301 - the user's own results files
        for g, c in enumerate(d["gt_class_ids"]):
            n += 1
            same = np.nonzero(np.asarray(d["pred_class_ids"]) == c)[0]
            if not len(same):
                continue
            t_gt = np.asarray(d["gt_RTs"][g], float)[:3, 3]
            t_pred = np.array([np.asarray(d["pred_RTs"][k], float)[:3, 3] for k in same])
            k = same[int(np.argmin(np.linalg.norm(t_pred - t_gt, axis=1)))]
            R, R_gt = _rotation(d["pred_RTs"][k]), _rotation(d["gt_RTs"][g])
            if c in Y_SYMMETRIC or (c == MUG and not d["gt_handle_visibility"][g]):
                deg = np.degrees(np.arccos(np.clip(R[:, 1] @ R_gt[:, 1], -1, 1)))
            else:
                deg = np.degrees(np.arccos(np.clip((np.trace(R @ R_gt.T) - 1) / 2, -1, 1)))
            cm = 100 * np.linalg.norm(np.asarray(d["pred_RTs"][k], float)[:3, 3] - t_gt)
            for th in thresholds:
                hits[th] += bool(deg <= th[0] and cm <= th[1])
    for (deg, cm), k in hits.items():
        print(f"within {deg}°/{cm} cm: {k}/{n} ({100 * k / max(n, 1):.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
