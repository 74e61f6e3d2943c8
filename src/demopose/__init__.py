"""demopose: category-level 9-DoF object pose estimation from RGB-D images."""

__version__ = "0.1.0"

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    # lazy: ``import demopose`` (and ``demopose --help``) stays fast; torch loads on first use
    if name == "Predictor":
        from demopose.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'demopose' has no attribute {name!r}")
