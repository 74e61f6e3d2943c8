"""Weights shipped inside the package, so that packaged configs and the predictor work from any folder after
``pip install`` (docs/checkpoints.md says how each was trained):

- ``demopose_synth_small.pt``: the DeMo-Pose model :class:`demopose.Predictor` loads by default;
- ``mono_synth_small.pt``: the small monocular detector (the frozen detector of ``demopose_synth_small``, and
  the default ``demopose predict --detector``);
- ``teacher_synth_tiny.pt``: the tiny Point-BERT distillation teacher of the ``*_synth_small`` configs.

Configs name them as ``${asset:NAME}`` (an OmegaConf resolver registered by :mod:`demopose.engine.config`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS_DIR", "asset_path", "list_assets"]

ASSETS_DIR = Path(__file__).resolve().parent


def list_assets() -> list[str]:
    """Names of the shipped weight files."""
    return sorted(p.name for p in ASSETS_DIR.glob("*.pt"))


def asset_path(name: str) -> Path:
    """The installed file of asset ``name`` (e.g. ``mono_synth_small.pt``).

    Raises:
        FileNotFoundError: no such asset (the message lists the shipped ones).
    """
    p = ASSETS_DIR / name
    if Path(name).name != name or not p.is_file():
        raise FileNotFoundError(f"asset {name!r} is not shipped with this installation of demopose "
                                f"(shipped: {', '.join(list_assets()) or 'none'})")
    return p
