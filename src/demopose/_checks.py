"""One input checker for the public boundary (kornia's ``KORNIA_CHECK_SHAPE`` idea).

Shapes are written as space-separated dimension letters from the project glossary
(B batch, N points, M predictions, K keypoints, C channels, H/W image) or integers; ``*`` matches any
number of leading dimensions. Letters bind: ``check_shape(a, "N 3")`` then ``check_shape(b, "N 3",
dims=bound)`` makes both N agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_shape", "check_finite"]


def _shape_of(x: Any) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"expected an array or tensor, got {type(x).__name__}")
    # symbolic sizes (torch.export, ONNX export) are kept as they are: int() would fix them to the example's
    return tuple(s if type(s).__name__ == "SymInt" else int(s) for s in shape)


def check_shape(
    x: Any, spec: str, name: str = "input", dims: dict[str, int] | None = None
) -> dict[str, int]:
    """Check that ``x`` has the shape ``spec`` and return the bound dimension letters.

    Args:
        x: a NumPy array or torch tensor.
        spec: e.g. ``"* 3 3"``, ``"B N 3"``, ``"4 4"``.
        name: the argument name shown in the error message.
        dims: letters already bound by earlier checks (updated in place and returned).

    Raises:
        ValueError: naming the argument, the expected and the actual shape.
    """
    shape = _shape_of(x)
    tokens = spec.split()
    dims = {} if dims is None else dims
    star = tokens[0] == "*"
    fixed = tokens[1:] if star else tokens
    if (star and len(shape) < len(fixed)) or (not star and len(shape) != len(fixed)):
        raise ValueError(f"{name}: expected shape ({spec}), got {shape}")
    tail = shape[len(shape) - len(fixed) :]
    for tok, size in zip(fixed, tail):
        if tok.isdigit():
            if int(tok) != size:
                raise ValueError(f"{name}: expected shape ({spec}), got {shape}")
        elif tok in dims and dims[tok] != size:
            raise ValueError(f"{name}: expected shape ({spec}) with {tok}={dims[tok]}, got {shape}")
        else:
            dims[tok] = size
    return dims


def check_finite(x: Any, name: str = "input") -> None:
    """Raise ``ValueError`` if ``x`` (array or tensor) holds NaN or infinity."""
    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
