"""The house's import layering (``../shared/DESIGN.md``): every package imports only from the layers below it.

Imports are read from the source with :mod:`ast` (those inside functions and ``TYPE_CHECKING`` blocks too), so a
lazy upward import fails here as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "demopose"

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "geometry": ("layers", "models", "data", "synth", "evaluation", "pipeline", "engine", "export", "predictor",
                 "cli", "benchmark"),
    "io": ("layers", "models", "data", "synth", "evaluation", "pipeline", "engine", "export", "predictor", "cli",
           "benchmark"),
    "categories": ("layers", "models", "data", "synth", "evaluation", "pipeline", "engine", "export", "predictor",
                   "cli", "benchmark"),
    "layers": ("models", "data", "synth", "evaluation", "pipeline", "engine", "export", "predictor", "cli",
               "benchmark"),
    "models": ("synth", "evaluation", "pipeline", "engine", "export", "predictor", "cli", "benchmark"),
    "evaluation": ("models", "synth", "pipeline", "engine", "export", "predictor", "cli", "benchmark"),
    "data": ("models", "evaluation", "pipeline", "engine", "export", "predictor", "cli", "benchmark"),
    "pipeline": ("engine", "export", "predictor", "cli", "benchmark"),
    "engine": ("export", "predictor", "cli", "benchmark"),
}
"""Package (or top-level module) of ``demopose`` -> the packages of ``demopose`` it must not import."""


def _modules(unit: str) -> list[Path]:
    path = SRC / unit
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def _imported(path: Path) -> set[str]:
    """The ``demopose`` units (first component after ``demopose.``) a source file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "demopose" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_no_upward_imports(unit):
    bad = []
    for path in _modules(unit):
        for target in sorted(_imported(path) & set(FORBIDDEN[unit])):
            bad.append(f"{path.relative_to(SRC)} imports demopose.{target}")
    assert not bad, f"{unit} may not import {FORBIDDEN[unit]}:\n" + "\n".join(bad)


def test_the_checker_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from demopose.engine.dist import rank\n    import demopose.cli\n")
    assert _imported(f) == {"engine", "cli"}
