"""Let a torch function over tensors also take and return NumPy arrays."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["numpy_compatible"]


def _to_numpy(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.detach().cpu().numpy()
    if isinstance(out, tuple):
        return tuple(_to_numpy(o) for o in out)
    return out


def _to_tensor(a: Any) -> Any:
    if not isinstance(a, np.ndarray):
        return a
    # copy() keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d) and drops odd strides
    return torch.from_numpy(a if a.flags.c_contiguous and a.dtype.isnative else a.copy())


def numpy_compatible(fn: F) -> F:
    """Decorate a torch function so NumPy inputs give NumPy outputs.

    When the first positional argument is a NumPy array, every NumPy array argument is converted to a
    tensor (float arrays keep their dtype; float16 is promoted to float32), the function runs, and
    tensor outputs are converted back. Tensor inputs are passed through untouched (autograd works).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not args or not isinstance(args[0], np.ndarray):
            return fn(*args, **kwargs)
        conv = [_to_tensor(a) for a in args]
        kw = {k: _to_tensor(v) for k, v in kwargs.items()}
        return _to_numpy(fn(*conv, **kw))

    return wrapper  # type: ignore[return-value]

