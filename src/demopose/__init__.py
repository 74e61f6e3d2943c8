"""demopose: category-level 9-DoF object pose estimation from RGB-D images.

``import demopose`` changes nothing in the process: the thread defaults that make inference faster on a small CPU
(:mod:`demopose._env`) are set where a program starts, by the ``demopose`` command and by
``from demopose import Predictor``, or by your program calling :func:`set_thread_defaults` before it imports torch.
"""

from demopose._env import set_thread_defaults

__version__ = "0.1.0"

__all__ = ["Predictor", "__version__", "set_thread_defaults"]


def __getattr__(name: str):
    # lazy: ``import demopose`` (and ``demopose --help``) stays fast; torch loads on first use
    if name == "Predictor":
        set_thread_defaults()  # a program using the predictor: before torch and numpy load, if they have not
        from demopose.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'demopose' has no attribute {name!r}")
