"""The model contracts and the types every model shares.

Two kinds of model, each a :class:`typing.Protocol` that every family and the onnxruntime backends implement
(``tests/test_model_contract.py`` checks each registered model):

- :class:`PoseModel`: estimates the poses of object instances given as point samples (``gpv``, ``hs_pose``,
  ``demopose``, ``cleanpose``, ``agpose``; :class:`~demopose.export.ort_backend.OrtPoseModel`,
  :class:`~demopose.export.ort_backend.OrtDeMoPose`). ``model(batch, generator) -> PosePrediction``.
- :class:`Detector`: finds the objects of a whole frame and their 2D boxes, projected cuboid keypoints and relative
  sizes (``mono``; :class:`~demopose.export.ort_backend.OrtMonoDetector`). ``detect_frame(frame) ->
  Instances`` (:class:`~demopose.data.frame_instances.Instances`); its poses come from PnP
  (``poses_from_detections``).

Both name their configuration ``config``, their category table ``categories`` and what the data pipeline must
give them in the same attributes (``image_size``, ``rgb_size``, ``mesh_points``), so the engine, the predictor and
the benchmarks read them without probing. Training adds ``loss(pred, batch) -> dict[str, Tensor]`` to the torch
models (not part of the contracts: the onnxruntime backends do not train).

Convention: ``R`` acts on column vectors and maps the NOCS object frame (y up) to the OpenCV camera
frame; ``t`` is the object centre in the camera frame; ``size`` holds the metric extents along the
object's x, y, z axes. All lengths are metres.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from demopose.categories import CategoryTable
    from demopose.data.frame import Frame
    from demopose.data.frame_instances import Instances
    from demopose.geometry.pose import PoseSet

__all__ = ["Detector", "PoseModel", "PosePrediction", "weights_key"]


class _WeightsKey:
    """Identity and version of some tensors; equal when all were equal at creation. :meth:`pin` (for a key that
    is stored) holds references to the tensors' memory, so that no other tensor can take their addresses while
    the key lives."""

    __slots__ = ("_key", "_refs", "_tensors")

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self._key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
        self._tensors = tensors
        self._refs: list[torch.Tensor] = []

    def pin(self) -> _WeightsKey:
        self._refs = [t.detach() for t in self._tensors]
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _WeightsKey) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


def _module_tensors(module: nn.Module, out: list[torch.Tensor]) -> list[torch.Tensor]:
    """Parameters and buffers of ``module`` and its submodules (a plain walk: several times cheaper than
    ``parameters()`` / ``buffers()``, which build names; shared tensors may appear twice)."""
    out.extend(t for t in module._parameters.values() if t is not None)
    out.extend(t for t in module._buffers.values() if t is not None)
    for child in module._modules.values():
        if child is not None:
            _module_tensors(child, out)
    return out


def weights_key(*modules: nn.Module) -> _WeightsKey | None:
    """Identity and version of every parameter and buffer of ``modules``: it changes when one of them is
    replaced or written in place (``load_state_dict``, an optimiser step, ``.to()``), so weights derived from
    them for inference (BatchNorm folded, ...) can be cached under it (store ``key.pin()``). None where it
    cannot be formed (inference-mode tensors carry no version counter): do not cache then."""
    tensors: list[torch.Tensor] = []
    for m in modules:
        _module_tensors(m, tensors)
    try:
        return _WeightsKey(tensors)
    except RuntimeError:
        return None


@dataclass
class PosePrediction:
    """Per-instance 9-DoF poses predicted by a model for a batch of ``B`` instances.

    Attributes:
        R: ``(B, 3, 3)`` rotations, det +1.
        t: ``(B, 3)`` translations in metres (camera frame).
        size: ``(B, 3)`` metric extents ``(x, y, z)`` in metres.
        score: ``(B,)`` confidence in [0, 1], or None when the model has no score of its own (the
            detection score is then used downstream).
        outputs: raw head outputs by name (model-specific; documented by each model), used by the
            losses and for debugging.
    """

    R: torch.Tensor
    t: torch.Tensor
    size: torch.Tensor
    score: torch.Tensor | None = None
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)

    def detach(self) -> PosePrediction:
        """A copy with every tensor detached from the graph."""
        return PosePrediction(
            R=self.R.detach(),
            t=self.t.detach(),
            size=self.size.detach(),
            score=None if self.score is None else self.score.detach(),
            outputs={k: v.detach() for k, v in self.outputs.items()},
        )


class _Module(Protocol):
    """What the engine and the predictor do with any model: mode switches and device moves (a torch module's; the
    onnxruntime backends accept them and change nothing)."""

    training: bool

    def eval(self) -> Any:
        ...

    def train(self, mode: bool = True) -> Any:
        ...

    def to(self, *args: Any, **kwargs: Any) -> Any:
        ...


@runtime_checkable
class Detector(_Module, Protocol):
    """A model that finds the objects of a whole RGB frame (``mono``, the onnxruntime mono graph).

    Attributes:
        config: the configuration record the model was built from (:class:`~demopose.models.mono.MonoConfig`).
        categories: the category table of its classes (1-based ids).
        image_size: ``(W_in, H_in)`` of the letterboxed frame it reads (its training samples are frames of that
            size, :class:`~demopose.data.detection_samples.FrameDetectionDataset`).
    """

    config: Any
    categories: CategoryTable
    image_size: tuple[int, int]

    def detect_frame(self, frame: Frame, device: torch.device | str | None = None) -> Instances:
        """The objects of ``frame`` in its original pixels, with the detector's feature maps of the frame."""
        ...

    def poses_from_detections(self, frame: Frame, det: Instances) -> PoseSet:
        """9-DoF poses of ``det`` (PnP on the keypoints, metric scale from the depth or the category mean)."""
        ...


@runtime_checkable
class PoseModel(_Module, Protocol):
    """A model that estimates the 9-DoF poses of object instances given as point samples.

    Attributes:
        config: the configuration record the model was built from (e.g. :class:`~demopose.models.gpv.GPVConfig`).
        categories: the category table of its classes (1-based ids in ``batch["class_ids"]``).
        image_size: ``(W_in, H_in)`` of the letterboxed whole frame it reads with its instances (``batch["image"]``
            or the detector's ``batch["image_features"]``, and ``batch["image_pixels"]``; DeMo-Pose with a fusion),
            or None.
        rgb_size: side in pixels of the square colour crop of each instance it reads (``batch["rgb"]``,
            ``batch["rgb_pixels"]``; CleanPose), or None.
        mesh_points: mesh samples per instance its training batch needs (``batch["model_points"]``, the
            Mesh-Point Loss), 0 for none.
        own_detector: the :class:`Detector` inside the model (DeMo-Pose's frozen monocular branch; its detections
            carry the feature maps the model then reuses), or None for a model that needs instance masks from
            elsewhere.

    ``model(batch, generator=None)``: ``batch`` holds ``points (B, N, 3)`` metres and ``class_ids (B,)`` plus
    what the attributes above ask for (:func:`demopose.data.instances.sample_instance`); ``generator`` seeds every
    random choice of the forward pass (random pooling), so a seeded inference is reproducible.
    """

    config: Any
    categories: CategoryTable
    image_size: tuple[int, int] | None
    rgb_size: int | None
    mesh_points: int
    own_detector: Detector | None

    def __call__(self, batch: Mapping[str, torch.Tensor],
                 generator: torch.Generator | None = None) -> PosePrediction:
        ...
