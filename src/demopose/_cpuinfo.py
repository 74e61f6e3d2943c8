"""The CPU as Linux describes it in ``/proc/cpuinfo`` (one reader for the places that need it)."""

from __future__ import annotations

import functools

__all__ = ["cpuinfo_field"]


@functools.cache
def cpuinfo_field(*names: str) -> str | None:
    """The value of the first ``/proc/cpuinfo`` line whose key is one of ``names`` (e.g. ``"model name"``,
    ``"flags"``, ``"Features"`` on ARM), stripped; None where there is no such line or no ``/proc/cpuinfo``
    (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in names:
                    return value.strip()
    except OSError:
        pass
    return None
