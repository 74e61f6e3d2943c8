"""demopose: category-level 9-DoF object pose estimation from RGB-D images."""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that spin while they wait make CPU work collapse on a busy machine (measured on the 2-core
# development machine at load 3-5: the demo's inference 10.8 s -> 0.5 s, the gpv model tests 109 s -> 17 s
# with sleeping waiters). Takes effect when demopose is imported before torch; an explicit value wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    # lazy: ``import demopose`` (and ``demopose --help``) stays fast; torch loads on first use
    if name == "Predictor":
        from demopose.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'demopose' has no attribute {name!r}")
