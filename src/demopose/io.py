"""Atomic file writes, and safe reading of pickles and torch files that may come from someone else.

Every write goes to a temporary file in the destination folder and is moved over the destination with
``os.replace`` (atomic on POSIX and Windows within one file system). Written files get the permissions the
process's umask gives a new file (``0644`` under the usual ``022``), like ``open()``, so a team can share
datasets and models. A failed write (a read-only folder, a full disk) raises an ``OSError`` naming the
destination, never the temporary file.

Reading: unpickling can run any code a file's author chose. :func:`read_pickle` unpickles data files
(ground truth, results, labels) with an allow-list of NumPy arrays, NumPy dtypes and scalars and plain
Python values; :func:`load_torch_file` reads torch files weights-only (tensors and plain values), plus an
explicit allow-list for a run's own training checkpoints. Anything else is refused with
:class:`UnsafeFileError`, naming the file and the refused type, before any of the file's code can run.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import contextlib
import errno
import json
import os
import pickle
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["UnsafeFileError", "atomic_path", "cache_dir", "describe_os_error", "file_mode", "load_torch_file",
           "load_weights_file", "read_pickle", "write_bytes_atomic", "write_json_atomic", "write_pickle_atomic",
           "write_png_atomic", "write_text_atomic"]


class UnsafeFileError(ValueError):
    """A pickle or torch file holds a type outside the allow-list (loading it could run the file's code)."""


def cache_dir(name: str) -> Path:
    """``$DEMOPOSE_CACHE/<name>``, default ``~/.cache/demopose/<name>``: files demopose derives once and keeps
    (ONNX exports, sampled meshes, compiled kernels). Not created here."""
    base = os.environ.get("DEMOPOSE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "demopose")
    return Path(base) / name


def _umask() -> int:
    """The process's umask, read without changing it where ``/proc`` tells it (no race with other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(executable: bool = False) -> int:
    """The permission bits a new file gets under the current umask (``0o666 & ~umask``; ``0o777`` base for an
    executable or a shared library)."""
    return (0o777 if executable else 0o666) & ~_umask()


def describe_os_error(e: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an ``OSError``: the file, what went wrong and what to do (a full disk says so)."""
    where = path if path is not None else e.filename
    what = e.strerror or str(e)
    hints = {errno.ENOSPC: "disk full: free space on that file system or write elsewhere",
             errno.EDQUOT: "disk quota exceeded: free space or write elsewhere",
             errno.EROFS: "read-only file system: choose another output folder",
             errno.EACCES: "permission denied: choose a folder you can write to (or fix its permissions)",
             errno.EPERM: "operation not permitted: choose a folder you can write to",
             errno.ENOTDIR: "a part of the path is a file, not a folder",
             errno.EISDIR: "expected a file but this is a folder",
             errno.EEXIST: "a file of that name is in the way"}
    hint = hints.get(e.errno or -1)
    head = f"{where}: {what}" if where is not None and str(where) not in what else what
    return head + (f" ({hint})" if hint else "")


def _reraise_naming(e: OSError, dest: Path) -> OSError:
    """``e`` again with ``dest`` as its file (a failed temporary file is an implementation detail)."""
    if e.errno is None:
        return e
    return OSError(e.errno, e.strerror or str(e), str(dest))  # OSError() picks the subclass (PermissionError ...)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    ``suffix`` (default: the destination's) lets writers that infer the format from the extension work. The
    temporary file has the umask's permissions (:func:`file_mode`); a writer may change them.

    Raises:
        OSError: the folder cannot be created or written (read-only, full, a file in the way); the error
            names ``path``.
    """
    dest = Path(path)
    try:
        if dest.parent.exists() and not dest.parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "the output folder is a file", str(dest.parent))
        if dest.is_dir():
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way of the output file", str(dest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix if suffix is not None else dest.suffix,
                                   dir=dest.parent)
        try:
            os.fchmod(fd, file_mode())
        finally:
            os.close(fd)
    except OSError as e:
        raise _reraise_naming(e, dest) from e
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename in (tmp, str(tmp)):
            raise _reraise_naming(e, dest) from e
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (an ``OSError`` names ``path``; a full disk says so)."""
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as e:
            raise _reraise_naming(e, Path(path)) from e


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


# ---------------------------------------------------------------------------------------------------------
# safe reading

_NUMPY_MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric", "numpy.dtypes")
_BUILTINS = frozenset({"complex", "set", "frozenset", "slice", "range", "bytearray", "bytes", "str", "int",
                       "float", "bool", "list", "dict", "tuple"})
_COLLECTIONS = frozenset({"OrderedDict"})


def _numpy_global(module: str, name: str) -> Any:
    """The allowed NumPy object ``module.name`` (arrays, dtypes, scalars), or None."""
    if module not in _NUMPY_MODULES:
        return None
    core = getattr(np, "_core", None) or np.core
    multiarray, numeric = core.multiarray, core.numeric
    if name == "ndarray" and module == "numpy":
        return np.ndarray
    if name == "dtype" and module == "numpy":
        return np.dtype
    if name == "_reconstruct" and module.endswith("multiarray"):
        return multiarray._reconstruct
    if name == "scalar" and module.endswith("multiarray"):
        return multiarray.scalar
    if name == "_frombuffer" and module.endswith("numeric"):
        return numeric._frombuffer
    if module == "numpy.dtypes" and name.endswith("DType"):  # the dtype classes, e.g. Float64DType
        cls = getattr(np.dtypes, name, None)
        return cls if isinstance(cls, type) and issubclass(cls, np.dtype) else None
    return None


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 uses it to pickle ``bytes`` at protocol < 3 (only the text codecs)."""
    if codecs.lookup(encoding).name not in ("iso8859-1", "utf-8", "ascii"):
        raise pickle.UnpicklingError(f"refused codec {encoding!r} in _codecs.encode")
    return codecs.encode(text, encoding, errors)


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that builds only NumPy arrays, dtypes and scalars and plain Python values."""

    def __init__(self, file: Any, source: str, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        import _compat_pickle

        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names (``__builtin__.set``)
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        found = _numpy_global(module, name)
        if found is not None:
            return found
        if module == "builtins" and name in _BUILTINS:
            return getattr(builtins, name)
        if module == "collections" and name in _COLLECTIONS:
            return getattr(collections, name)
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise UnsafeFileError(f"{self.source}: refused to unpickle '{module}.{name}': a data pickle may hold only "
                              f"NumPy arrays, dtypes and scalars and plain Python values (loading other types can "
                              f"run code from the file); nothing from this file was run")


def read_pickle(path: str | os.PathLike, encoding: str = "latin1") -> Any:
    """Unpickle a data file (ground truth, results, labels; written by Python 2 or 3) with an allow-list.

    Allowed: NumPy arrays (any dtype, object arrays of allowed values), dtypes and scalars; ``dict``,
    ``list``, ``tuple``, ``set``, ``frozenset``, ``str``, ``bytes``, numbers, ``None``, ``OrderedDict``.
    ``encoding="latin1"`` reads Python 2 NumPy pickles (as NOCS ships them).

    Raises:
        FileNotFoundError: no such file. UnsafeFileError: the file holds another type (named).
        ValueError: not a readable pickle (truncated, damaged).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        with open(p, "rb") as f:
            return _DataUnpickler(f, str(p), encoding=encoding).load()
    except UnsafeFileError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError,
            KeyError, MemoryError) as e:
        raise ValueError(f"{p}: not a readable pickle ({type(e).__name__}: {e})") from None


def _torch_safe_globals(names: Iterable[str]) -> list[Any]:
    """Objects for torch's ``safe_globals`` from the names ``numpy.ndarray``, ``numpy.dtype``,
    ``numpy.core.multiarray._reconstruct``, ``numpy.dtypes.<X>DType`` ..."""
    out = []
    for full in names:
        module, _, name = full.rpartition(".")
        obj = _numpy_global(module, name)
        if obj is not None:
            out.append(obj)
    return out


TRAINING_STATE_GLOBALS = ("numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct",
                          "numpy._core.multiarray._reconstruct", "numpy.core.multiarray.scalar",
                          "numpy._core.multiarray.scalar", *(f"numpy.dtypes.{n}" for n in (
                              "UInt32DType", "Int64DType", "Float64DType", "Float32DType", "BoolDType")))
"""What a run's own training checkpoint holds besides tensors and plain values: NumPy's RNG state (an
array of uint32) and NumPy scalars."""


def load_torch_file(path: str | os.PathLike, map_location: Any = "cpu", allow: Iterable[str] = ()) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain Python values, plus the types named in
    ``allow`` (e.g. :data:`TRAINING_STATE_GLOBALS` for one's own training checkpoint).

    Raises:
        FileNotFoundError: no such file. UnsafeFileError: the file holds a type outside the allow-list (named;
            nothing of it ran). ValueError: not a readable torch file (truncated, damaged, another format).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found" + (" (it is a folder)" if p.is_dir() else ""))
    extra = _torch_safe_globals(allow)
    try:
        with torch.serialization.safe_globals(extra):
            return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _refused_torch_globals(p, str(e), extra)
        if refused:
            raise UnsafeFileError(
                f"{p}: refused to load {', '.join(repr(r) for r in refused)}: a weights-only load allows tensors "
                f"and plain Python values only (loading other types can run code from the file); nothing from this "
                f"file was run. Re-save it as a state dict if you trust it") from None
        raise ValueError(f"{p}: not a readable torch file: truncated or damaged? ({_first_line(e)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, TypeError, IndexError) as e:
        if isinstance(e, OSError) and not isinstance(e, EOFError) and e.errno is not None:
            raise
        raise ValueError(f"{p}: not a readable torch file: truncated or damaged? ({_first_line(e)})") from None


def load_weights_file(module: Any, path: str | os.PathLike, what: str = "the model", state: Any = None) -> Any:
    """Load the weights of a torch file into ``module`` (a ``torch.nn.Module``): a checkpoint's ``"model"`` state
    dict or a bare state dict. Weights-only (:func:`load_torch_file`): nothing of the file can run. Models use it for
    the frozen sub-networks they are built on (DeMo-Pose's detector), without the training engine.

    Args:
        what: names the receiving model in the error messages.
        state: the already loaded contents of ``path`` (saves reading it twice).

    Returns:
        the file's contents (the checkpoint dict, or the bare state dict).

    Raises:
        FileNotFoundError: no file (the message names ``what``). UnsafeFileError / ValueError: not a readable
            weights-only torch file, or weights that do not fit ``module``.
    """
    if state is None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{what}: checkpoint {path} does not exist")
        state = load_torch_file(path, allow=TRAINING_STATE_GLOBALS)
    weights = state.get("model", state) if isinstance(state, dict) else state
    try:
        module.load_state_dict(weights)
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit {what} ({str(e).splitlines()[0]})") from e
    return state


def _first_line(e: BaseException) -> str:
    """The informative part of a loader's error (torch's weights-only errors wrap it in paragraphs of advice)."""
    msg = str(e).strip()
    m = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\nCheck the documentation|$)", msg, re.S)
    if m:
        msg = " ".join(m.group(1).split())
    text = msg.splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:160]


def _refused_torch_globals(p: Path, message: str, extra: list[Any]) -> list[str]:
    import torch

    try:
        with torch.serialization.safe_globals(extra):
            found = torch.serialization.get_unsafe_globals_in_checkpoint(p)
    except Exception:  # noqa: BLE001 - a legacy (non-zip) file: fall back to the error message
        found = []
    if not found:
        found = re.findall(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL|Unsupported class) ([\w.]+)", message)
    return list(dict.fromkeys(found))
