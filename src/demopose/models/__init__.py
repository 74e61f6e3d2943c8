"""Pose models: shared types, the registry, and the model families (importing registers them)."""

import warnings as _warnings

from demopose.models.base import PosePrediction
from demopose.models.cleanpose import CleanPose, CleanPoseConfig  # registers cleanpose(_small), agpose(_small)
from demopose.models.demopose import DeMoPose, DeMoPoseConfig  # registers demopose, demopose_small
from demopose.models.gpv import GPVConfig, GPVPose  # registers gpv, gpv_small, hs_pose, hs_pose_small
from demopose.models.gpv_loss import GPVLossWeights, gpv_loss, gpv_symmetry_targets
from demopose.models.mono import MonoConfig, MonoDetector  # registers mono, mono_small
from demopose.models.registry import build_model, list_models, register_model

__all__ = [
    "CleanPose",
    "CleanPoseConfig",
    "DeMoPose",
    "DeMoPoseConfig",
    "GPVConfig",
    "GPVLossWeights",
    "GPVPose",
    "MonoConfig",
    "MonoDetector",
    "PosePrediction",
    "build_model",
    "gpv_loss",
    "gpv_symmetry_targets",
    "list_models",
    "register_model",
]

_RENAMED = {"AGPose": ("CleanPose", CleanPose), "AGPoseConfig": ("CleanPoseConfig", CleanPoseConfig)}


def __getattr__(name: str):
    """Deprecated names, kept for one release: ``AGPose`` / ``AGPoseConfig`` (now :class:`CleanPose` /
    :class:`CleanPoseConfig` in :mod:`demopose.models.cleanpose`)."""
    if name in _RENAMED:
        new, obj = _RENAMED[name]
        _warnings.warn(f"demopose.models.{name} is deprecated; use demopose.models.{new}", DeprecationWarning,
                       stacklevel=2)
        return obj
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
