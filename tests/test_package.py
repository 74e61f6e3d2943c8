"""Package-level behaviour: ``import demopose`` stays light and leaves the environment alone; the programs
(the command, the predictor) set the thread defaults (:mod:`demopose._env`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS")
_PRINT = "import os; print(*(os.environ.get(k) for k in ('GOMP_SPINCOUNT', 'OMP_WAIT_POLICY', 'OPENBLAS_NUM_THREADS')))"


def _run(code: str, given: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _VARS}
    out = subprocess.run([sys.executable, "-c", code], env={**env, **given}, capture_output=True, text=True,
                         check=False)
    assert out.returncode in (0, 2), out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("given", "expected"), [
    ({}, {"GOMP_SPINCOUNT": "10000", "OPENBLAS_NUM_THREADS": "1"}),  # a short spin, then sleep; one BLAS thread
    ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OPENBLAS_NUM_THREADS": "1"}),  # an explicit policy is left alone
    ({"GOMP_SPINCOUNT": "5", "OPENBLAS_NUM_THREADS": "4"}, {}),  # your values win
])
def test_thread_defaults(given: dict[str, str], expected: dict[str, str]) -> None:
    from demopose import set_thread_defaults

    env = dict(given)
    assert set_thread_defaults(env) == expected
    assert env == {**given, **expected}


def test_import_sets_no_environment() -> None:
    """``import demopose`` leaves the process alone: the defaults belong to the programs that start."""
    assert _run("import demopose; " + _PRINT, {}) == "None None None"


@pytest.mark.parametrize("start", [
    "from demopose import Predictor",  # the product API, before it loads torch
    "from demopose.cli import main; main([])",  # the demopose command (prints its help, exit code 2)
])
def test_programs_set_the_defaults_before_torch(start: str) -> None:
    code = f"{start}; import sys; assert 'torch' in sys.modules; " + _PRINT
    assert _run(code, {}) == "10000 None 1"
    assert _run(code, {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "2"}) == "None PASSIVE 2"


def test_import_is_light() -> None:
    """``import demopose`` must not load torch (the CLI's --help stays fast)."""
    out = subprocess.run([sys.executable, "-c", "import sys, demopose; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
