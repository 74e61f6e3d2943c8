"""Types shared by every pose model: the prediction record, and the key of derived inference weights.

Convention: ``R`` acts on column vectors and maps the NOCS object frame (y up) to the OpenCV camera
frame; ``t`` is the object centre in the camera frame; ``size`` holds the metric extents along the
object's x, y, z axes. All lengths are metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["PosePrediction", "weights_key"]


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
