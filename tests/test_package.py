"""Package-level behaviour of ``import demopose``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PRINT_ENV = "import os, demopose; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(("given", "expected"), [
    ({}, "10000 None"),  # the default: a short spin, then sleep (benchmarks/omp_wait_policy.py)
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "None ACTIVE"),  # an explicit policy is left alone
    ({"GOMP_SPINCOUNT": "5"}, "5 None"),
])
def test_openmp_wait_default(given: dict[str, str], expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", _PRINT_ENV], env={**env, **given}, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == expected


def test_blas_threads_default() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    code = "import os, demopose; print(os.environ['OPENBLAS_NUM_THREADS'])"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "1"
    assert subprocess.run([sys.executable, "-c", code], env={**env, "OPENBLAS_NUM_THREADS": "4"}, capture_output=True,
                          text=True, check=True).stdout.strip() == "4"


def test_import_is_light() -> None:
    """``import demopose`` must not load torch (the CLI's --help stays fast)."""
    out = subprocess.run([sys.executable, "-c", "import sys, demopose; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
