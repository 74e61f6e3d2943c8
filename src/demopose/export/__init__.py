"""Deployment: ONNX export of the inference graphs, onnxruntime backends and int8 quantisation.

``onnx`` / ``onnxscript`` (export) and ``onnxruntime`` (backends, quantisation) are optional dependencies
(``pip install 'demopose[export]'``); they are imported when a function needs them.
"""

from demopose.export.onnx_export import (
    CLEANPOSE_REASON,
    ExportError,
    export_checkpoint,
    export_model,
    export_mono_graph,
    export_pose_graph,
    read_metadata,
)
from demopose.export.ort_backend import OrtDeMoPose, OrtMonoDetector, OrtPoseModel, create_session, load_ort_model

__all__ = [
    "CLEANPOSE_REASON",
    "ExportError",
    "OrtDeMoPose",
    "OrtMonoDetector",
    "OrtPoseModel",
    "create_session",
    "export_checkpoint",
    "export_model",
    "export_mono_graph",
    "export_pose_graph",
    "load_ort_model",
    "read_metadata",
]
