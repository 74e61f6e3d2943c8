"""Pose models: shared types, the registry, and the model families (importing registers them)."""

from demopose.models import gpv as _gpv  # noqa: F401  (registers gpv, gpv_small, hs_pose, hs_pose_small)
from demopose.models.base import PosePrediction
from demopose.models.registry import build_model, list_models, register_model

__all__ = ["PosePrediction", "build_model", "list_models", "register_model"]
