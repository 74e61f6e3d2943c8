"""Greedy prediction-to-ground-truth matching of the NOCS protocol, for one category of one frame.

Source: hughw19/NOCS_CVPR2019 ``utils.py`` (``compute_3d_matches``, ``compute_match_from_degree_cm``).
Both matchers visit the predictions in the given order (the caller sorts them by decreasing score) and
run every threshold at once (vectorised over the threshold grid).

Tie order: the published code sorts with ``np.argsort(x)[::-1]`` (decreasing) and ``np.argsort(x)``
(increasing). For the handful of boxes of one category in one frame NumPy's default sort is stable, so
a tie is visited in *decreasing* index order by the decreasing sorts and in increasing index order by
the increasing ones; :func:`score_order` and the matchers below reproduce exactly that.
"""

from __future__ import annotations

import numpy as np

__all__ = ["match_by_iou", "match_by_pose", "score_order"]


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices ``(M,)`` visiting ``scores (M,)`` by decreasing score, ties by decreasing index."""
    return np.argsort(np.asarray(scores), kind="stable")[::-1]


def match_by_iou(iou: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU matching at every threshold.

    For each prediction (rows, already in score order) the ground truths are visited by decreasing IoU;
    a matched one is skipped, the walk stops at the first IoU ``< τ``, and a ground truth is matched when
    its IoU is ``> τ`` (strict; an IoU equal to τ is passed over).

    Args:
        iou: ``(M, G)`` IoU of the predictions (score order) against the ground truths.
        thresholds: ``(T,)`` IoU thresholds.

    Returns:
        ``pred_match (T, M)`` and ``gt_match (T, G)`` int64: the matched index, or -1.
    """
    iou = np.asarray(iou, dtype=np.float64)
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    M, G = iou.shape
    T = len(thr)
    pred_match = -np.ones((T, M), np.int64)
    gt_match = -np.ones((T, G), np.int64)
    if M == 0 or G == 0:
        return pred_match, gt_match
    for i in range(M):
        active = np.ones(T, bool)
        for j in np.argsort(iou[i], kind="stable")[::-1]:
            v = iou[i, j]
            live = active & (gt_match[:, j] < 0)
            stop = live & (v < thr)
            hit = live & (v > thr)
            gt_match[hit, j] = i
            pred_match[hit, i] = j
            active &= ~(stop | hit)
            if not active.any():
                break
    return pred_match, gt_match


def match_by_pose(rot_err: np.ndarray, trans_err: np.ndarray, degree_thresholds: np.ndarray,
                  shift_thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose matching on the (degree, cm) grid.

    For each prediction (rows, in score order) the ground truths are visited by increasing
    ``θ + cm`` (NaN last); a matched one is skipped, and the first with ``θ ≤ d`` and ``cm ≤ s`` is
    matched. A NaN error is never ``> threshold``, so it matches (published behaviour, see
    :mod:`demopose.evaluation.errors`).

    Args:
        rot_err: ``(M, G)`` rotation errors, degrees.
        trans_err: ``(M, G)`` translation errors, centimetres.
        degree_thresholds: ``(D,)``; shift_thresholds: ``(S,)``.

    Returns:
        ``pred_match (D, S, M)`` and ``gt_match (D, S, G)`` int64: matched index or -1.
    """
    rot_err = np.asarray(rot_err, dtype=np.float64)
    trans_err = np.asarray(trans_err, dtype=np.float64)
    deg = np.asarray(degree_thresholds, dtype=np.float64).reshape(-1)
    cm = np.asarray(shift_thresholds, dtype=np.float64).reshape(-1)
    M, G = rot_err.shape
    D, S = len(deg), len(cm)
    pred_match = -np.ones((D, S, M), np.int64)
    gt_match = -np.ones((D, S, G), np.int64)
    if M == 0 or G == 0:
        return pred_match, gt_match
    total = rot_err + trans_err
    for i in range(M):
        active = np.ones((D, S), bool)
        for j in np.argsort(total[i], kind="stable"):
            # "not (θ > d or cm > s)", so that NaN passes like in the published code
            ok = ~((rot_err[i, j] > deg)[:, None] | (trans_err[i, j] > cm)[None, :])
            hit = active & ok & (gt_match[:, :, j] < 0)
            gt_match[hit, j] = i
            pred_match[hit, i] = j
            active &= ~hit
            if not active.any():
                break
    return pred_match, gt_match
