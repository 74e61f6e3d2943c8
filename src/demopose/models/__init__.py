"""Pose models: shared types, the registry, and the model families (importing registers them)."""

from demopose.models.agpose import AGPose, AGPoseConfig  # registers cleanpose(_small), agpose(_small)
from demopose.models.base import PosePrediction
from demopose.models.demopose import DeMoPose, DeMoPoseConfig  # registers demopose, demopose_small
from demopose.models.gpv import GPVConfig, GPVPose  # registers gpv, gpv_small, hs_pose, hs_pose_small
from demopose.models.gpv_loss import GPVLossWeights, gpv_loss, gpv_symmetry_targets
from demopose.models.mono import MonoConfig, MonoDetector  # registers mono, mono_small
from demopose.models.registry import build_model, list_models, register_model

__all__ = [
    "AGPose",
    "AGPoseConfig",
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
