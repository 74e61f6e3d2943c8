"""Atomic file writes: a crash or a kill never leaves a half-written file in place.

Every write goes to a temporary file in the destination folder and is moved over the destination with
``os.replace`` (atomic on POSIX and Windows within one file system).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_path", "cache_dir", "write_bytes_atomic", "write_json_atomic", "write_pickle_atomic",
           "write_png_atomic", "write_text_atomic"]


def cache_dir(name: str) -> Path:
    """``$DEMOPOSE_CACHE/<name>``, default ``~/.cache/demopose/<name>``: files demopose derives once and keeps
    (ONNX exports, sampled meshes, compiled kernels). Not created here."""
    base = os.environ.get("DEMOPOSE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "demopose")
    return Path(base) / name


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    ``suffix`` (default: the destination's) lets writers that infer the format from the extension work.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix if suffix is not None else dest.suffix,
                               dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON atomically (NumPy scalars and arrays are converted)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    write_text_atomic(path, json.dumps(obj, indent=indent, default=default) + "\n")


def write_pickle_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Pickle ``obj`` to ``path`` atomically (protocol 4, readable by Python >= 3.4)."""
    write_bytes_atomic(path, pickle.dumps(obj, protocol=4))


def write_png_atomic(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an image with OpenCV atomically.

    Args:
        image: ``(H, W)`` uint8/uint16, or ``(H, W, 3|4)`` uint8/uint16 in **OpenCV BGR(A) order**.

    Raises:
        ValueError: if OpenCV cannot encode the array.
    """
    import cv2

    ok, buf = cv2.imencode(Path(path).suffix or ".png", image)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode an image of shape {image.shape} {image.dtype}")
    write_bytes_atomic(path, buf.tobytes())
