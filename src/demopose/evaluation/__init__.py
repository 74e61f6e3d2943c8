"""The NOCS evaluation protocol: 3D IoU (``nocs`` legacy and ``exact`` modes), pose errors, greedy
matching, VOC AP, the :class:`NOCSEvaluator`, NOCS results pkl I/O, tables and plots.

See notes/depth_and_eval.md §4 and :mod:`demopose.evaluation.evaluator` for the protocol.
"""

from demopose.evaluation.ap import voc_ap
from demopose.evaluation.errors import pose_errors, rotation_error_deg, translation_error_cm
from demopose.evaluation.evaluator import NOCSEvaluator
from demopose.evaluation.iou import IOU_MODES, N_SYMMETRY_STEPS, iou_3d, iou_3d_exact, iou_3d_nocs
from demopose.evaluation.matching import match_by_iou, match_by_pose, score_order
from demopose.evaluation.results import (
    RESULT_KEYS,
    FrameResult,
    find_results,
    frame_from_dict,
    frame_to_dict,
    iter_results,
    read_results_pkl,
    write_results_pkl,
)
from demopose.evaluation.summary import (
    DEFAULT_DEGREE_THRESHOLDS,
    DEFAULT_IOU_THRESHOLDS,
    DEFAULT_SHIFT_THRESHOLDS,
    HEADLINE_IOU,
    HEADLINE_METRICS,
    HEADLINE_POSE,
    NOCSMetrics,
)

__all__ = [
    "DEFAULT_DEGREE_THRESHOLDS",
    "DEFAULT_IOU_THRESHOLDS",
    "DEFAULT_SHIFT_THRESHOLDS",
    "HEADLINE_IOU",
    "HEADLINE_METRICS",
    "HEADLINE_POSE",
    "IOU_MODES",
    "RESULT_KEYS",
    "FrameResult",
    "find_results",
    "frame_from_dict",
    "frame_to_dict",
    "iter_results",
    "read_results_pkl",
    "write_results_pkl",
    "N_SYMMETRY_STEPS",
    "NOCSEvaluator",
    "NOCSMetrics",
    "iou_3d",
    "iou_3d_exact",
    "iou_3d_nocs",
    "match_by_iou",
    "match_by_pose",
    "pose_errors",
    "rotation_error_deg",
    "score_order",
    "translation_error_cm",
    "voc_ap",
]
