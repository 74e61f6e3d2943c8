"""demopose: category-level 9-DoF object pose estimation from RGB-D images."""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that wait by spinning make torch crawl on a busy machine, and threads that sleep at once
# make it slower on a quiet one. A short spin (GOMP_SPINCOUNT 10,000, then sleep) is a trade-off between them:
# about as fast as libgomp's default on a quiet machine, twice as fast on a busy one, but still slower there than
# sleeping at once (benchmarks/results/omp_wait_policy.json, python benchmarks/omp_wait_policy.py; set
# OMP_WAIT_POLICY=PASSIVE on a machine that is always busy). libgomp only (the torch wheels' OpenMP). Takes effect
# when demopose is imported before torch (the CLI always is); an explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "10000")
# numpy's OpenBLAS runs only small geometric products here, and its idle workers spin on the cores torch's threads
# need next: one BLAS thread (benchmarks/results/blas_threads.json). Same rule: before numpy loads; yours wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    # lazy: ``import demopose`` (and ``demopose --help``) stays fast; torch loads on first use
    if name == "Predictor":
        from demopose.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'demopose' has no attribute {name!r}")
