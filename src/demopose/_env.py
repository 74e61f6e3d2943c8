"""Thread settings of the programs demopose starts: its command line, :class:`~demopose.Predictor`, the benchmarks.

Two environment variables make torch inference up to 2.5 times faster on a small, shared CPU (the table of
process-wide defaults at the top of BENCHMARKS.md):

- ``GOMP_SPINCOUNT=10000``: OpenMP threads that wait spin briefly, then sleep. Threads that spin long make torch
  crawl on a busy machine; threads that sleep at once make it slower on a quiet one. A short spin is about as
  fast as libgomp's default on a quiet machine and twice as fast on a busy one (still slower there than
  ``OMP_WAIT_POLICY=PASSIVE``: set that on a machine that is always busy). Not set when ``OMP_WAIT_POLICY`` is.
  libgomp only (the OpenMP of the torch wheels); ``benchmarks/omp_wait_policy.py``.
- ``OPENBLAS_NUM_THREADS=1``: numpy's OpenBLAS runs only small geometric products here, and its idle workers
  spin on the cores torch's threads need next; ``benchmarks/blas_threads.py``.

Both are read once, when the library loads (libgomp with torch, OpenBLAS with numpy), so they take effect only
when set before torch and numpy are imported: :func:`set_thread_defaults` is called first thing by the
``demopose`` command and by ``from demopose import Predictor``, never by ``import demopose`` alone. A variable
you set yourself always wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

__all__ = ["THREAD_DEFAULTS", "set_thread_defaults", "thread_defaults"]

THREAD_DEFAULTS: dict[str, str] = {"GOMP_SPINCOUNT": "10000", "OPENBLAS_NUM_THREADS": "1"}
"""The variables and their default values (module docstring)."""


def thread_defaults(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The defaults that apply under ``environ`` (default ``os.environ``): those of :data:`THREAD_DEFAULTS` it does
    not set (``GOMP_SPINCOUNT`` is also left out when ``OMP_WAIT_POLICY`` is set). For a child process's
    environment: ``{**os.environ, **thread_defaults()}``."""
    env = os.environ if environ is None else environ
    out = {k: v for k, v in THREAD_DEFAULTS.items() if k not in env}
    if "OMP_WAIT_POLICY" in env:
        out.pop("GOMP_SPINCOUNT", None)
    return out


def set_thread_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put :func:`thread_defaults` into ``environ`` (default ``os.environ``) and return what was set. Call it
    before torch and numpy are imported (module docstring); later, it changes nothing that is already running."""
    env = os.environ if environ is None else environ
    added = thread_defaults(env)
    env.update(added)
    return added
