"""Shared test fixtures."""

from collections.abc import Callable
from pathlib import Path

from demopose import set_thread_defaults

set_thread_defaults()  # the test session is a program: the thread defaults before torch loads

import pytest  # noqa: E402

from demopose.synth.generate import SynthConfig, generate  # noqa: E402


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Callable[[int, int], Path]:
    """``make(n_train, n_test) -> root``: a tiny REAL-style generated dataset (160×120, train seed 1, test seed 2,
    and a validation split of ``min(n_test, 2)`` frames, seed 3, which the synthetic presets validate on), built
    once per size per test session."""
    cache: dict[tuple[int, int], Path] = {}

    def make(n_train: int, n_test: int) -> Path:
        if (n_train, n_test) not in cache:
            root = tmp_path_factory.mktemp(f"synth_{n_train}_{n_test}")
            for split, seed, n in (("train", 1, n_train), ("test", 2, n_test), ("val", 3, min(n_test, 2))):
                generate(SynthConfig(out=str(root), frames=n, seed=seed, style="real", split=split, width=160,
                                     height=120, models_per_category=2, mpl_points=64), progress=False)
            cache[(n_train, n_test)] = root
        return cache[(n_train, n_test)]

    return make
