"""VOC all-point average precision, as computed by the NOCS evaluation code.

Source: hughw19/NOCS_CVPR2019 ``utils.py`` ``compute_ap_from_matches_scores``. Predictions are sorted
by decreasing score with ``np.argsort(scores)[::-1]`` (NumPy's default sort, exactly as published, so
ties across frames fall in the same order); precision_k = TP_k / k, recall_k = TP_k / #GT (the
published code computes recall in float32); the curves are padded with precision 0 at both ends and
recall 0 / 1; precision is made non-increasing from the right; AP = Σ (r_i − r_{i−1})·p_i over the
points where recall changes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["voc_ap"]


def voc_ap(tp: np.ndarray, scores: np.ndarray, num_gt: int) -> np.ndarray:
    """AP for several threshold settings sharing one set of predictions.

    Args:
        tp: ``(..., P)`` bool, whether each prediction is a true positive at each setting.
        scores: ``(P,)`` prediction scores.
        num_gt: number of ground truths (the recall denominator).

    Returns:
        ``(...)`` float64 AP in [0, 1]; NaN everywhere when ``num_gt`` is 0 (undefined; the published
        code also yields NaN there).
    """
    tp = np.asarray(tp, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    lead = tp.shape[:-1]
    P = tp.shape[-1]
    if len(scores) != P:
        raise ValueError(f"tp: expected {len(scores)} predictions on the last axis, got shape {tp.shape}")
    if num_gt <= 0:
        return np.full(lead, np.nan)
    K = int(np.prod(lead))
    tp = tp.reshape(K, P)[:, np.argsort(scores)[::-1]]
    cum = np.cumsum(tp, axis=1)
    prec = cum / (np.arange(P) + 1)
    rec = (cum.astype(np.float32) / np.float32(num_gt)).astype(np.float64)
    prec = np.concatenate([np.zeros((K, 1)), prec, np.zeros((K, 1))], axis=1)
    rec = np.concatenate([np.zeros((K, 1)), rec, np.ones((K, 1))], axis=1)
    prec = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]
    change = rec[:, :-1] != rec[:, 1:]
    out = np.empty(K)
    for k in range(K):  # one sum per row over the change points only: same rounding as published
        idx = np.nonzero(change[k])[0] + 1
        out[k] = np.sum((rec[k, idx] - rec[k, idx - 1]) * prec[k, idx])
    return out.reshape(lead)
