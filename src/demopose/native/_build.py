"""Build a C source of this package into a shared library on first use, and load it with ctypes.

The kernels in :mod:`demopose.native` are plain C (no torch or Python headers), so a C compiler builds one in
about a second. It is built once per machine for this machine's CPU (``-O3 -march=native``) into
``$DEMOPOSE_CACHE/native`` (default ``~/.cache/demopose/native``), under a name that hashes the source, the
compiler, the flags and the CPU's feature flags, so an edited source, another compiler or another CPU sharing the
cache folder gets its own build. The build is written to a temporary name and moved into place, so concurrent
processes and interrupted builds never load a partial file.

Where no compiler works (no ``cc``, a failing build), :func:`load_library` warns once and returns None, and the
callers run their torch path; the results are the same, only slower. ``DEMOPOSE_NATIVE=0`` turns the kernels off
without trying; ``CC`` picks the compiler.

Loading a shared library runs its code, and the cached file's name is predictable, so a cached build is loaded
only from a folder owned by this user that no one else may write to, and only when the file itself is a regular
file owned by this user and writable by no one else (:func:`unsafe_reason`). Otherwise (a shared or
world-writable cache folder, a file planted by someone else) the kernel is built into a fresh private
temporary folder and loaded from there, with one warning naming the folder and the reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
import warnings
from importlib import resources
from pathlib import Path

from demopose._cpuinfo import cpuinfo_field
from demopose.io import atomic_path, cache_dir, file_mode

__all__ = ["applicable", "load_library", "native_disabled", "unsafe_reason"]

FLAGS = ("-O3", "-ffp-contract=off", "-fPIC", "-shared", "-pthread")
"""``-ffp-contract=off``: a multiply and an add stay two roundings unless the source asks for a fused one, so
that a kernel can reproduce PyTorch's elementwise arithmetic bit for bit (``knn.c``)."""
NATIVE_FLAGS = ("-march=native",)
"""Tried first; a compiler that does not know them (some ARM toolchains) builds without them."""

_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL | None] = {}


def native_disabled() -> bool:
    """Whether ``DEMOPOSE_NATIVE`` turns the compiled kernels off (``0``, ``false``, ``no`` or ``off``)."""
    return os.environ.get("DEMOPOSE_NATIVE", "1").strip().lower() in ("0", "false", "no", "off")


def applicable(*tensors) -> bool:
    """Whether a kernel may take these float tensors: on CPU, float32, no gradient being recorded through them,
    and not inside ``torch.export`` / ``torch.compile`` / ``torch.jit`` tracing (the kernels are opaque there).
    Availability of the kernel itself is checked by its module."""
    import torch

    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    return not (torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing())


def _cpu_flags() -> str:
    """What identifies this CPU for a ``-march=native`` build: the feature flags line of ``/proc/cpuinfo``, or
    where there is none (macOS, Windows) the processor name and the host name, so that a cache folder shared by
    several machines never hands one of them another CPU's build."""
    return cpuinfo_field("flags", "Features") or f"{platform.processor()}|{platform.node()}"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


class _BuildError(Exception):
    pass


def _compile(compiler: str, source: Path, target: Path) -> None:
    """Build ``source`` into ``target`` atomically; raises RuntimeError with the compiler's message on failure."""
    errors = []
    for extra in (NATIVE_FLAGS, ()):
        cmd = [compiler, *FLAGS, *extra, "-o", "<target>", str(source)]
        try:
            with atomic_path(target) as tmp:  # moved into place only if the block ends without an error
                cmd[cmd.index("<target>")] = str(tmp)
                try:
                    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise _BuildError(f"{' '.join(cmd)}: {exc}") from exc
                if run.returncode != 0:
                    raise _BuildError(f"{' '.join(cmd)} (exit {run.returncode}): {run.stderr.strip()[-2000:]}")
                os.chmod(tmp, file_mode(executable=True) & ~0o022)  # readable per umask, never writable by others
            return
        except _BuildError as exc:
            errors.append(str(exc))
    raise RuntimeError("\n".join(errors))


def build_library(name: str, compiler: str | None = None, folder: Path | None = None) -> Path:
    """Build the package's ``native/<name>.c`` (unless already built) and return the shared library's path.

    Raises:
        RuntimeError: no C compiler was found, or the build failed (the message holds the compiler's output).
    """
    source = Path(str(resources.files("demopose.native").joinpath(f"{name}.c")))
    compiler = compiler or _compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found (set CC, or install cc / gcc / clang)")
    key = hashlib.sha256()
    headers = [h.read_bytes() for h in sorted(source.parent.glob("*.h"))]  # included by the sources
    for part in (source.read_bytes(), *headers, compiler.encode(), " ".join(FLAGS + NATIVE_FLAGS).encode(),
                 platform.machine().encode(), _cpu_flags().encode()):
        key.update(part)
        key.update(b"\0")
    suffix = ".dll" if os.name == "nt" else ".so"
    folder = folder or cache_dir("native")
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # ours: keep it writable by us only, whatever the umask
            if folder.stat().st_uid == _uid():
                os.chmod(folder, folder.stat().st_mode & ~0o022)
    target = folder / f"{name}-{key.hexdigest()[:16]}{suffix}"
    if not target.is_file():
        _compile(compiler, source, target)
    return target


def _uid() -> int | None:
    return os.geteuid() if hasattr(os, "geteuid") else None


def unsafe_reason(path: Path) -> str | None:
    """Why loading the shared library ``path`` could run someone else's code, or None when it is safe: its
    folder must be a real folder owned by this user and not writable by group or others, and the file a regular
    file (not a link) owned by this user and not writable by group or others. (No check where the OS has no
    user ids.)"""
    uid = _uid()
    if uid is None:
        return None
    try:
        d = os.lstat(path.parent)
        f = os.lstat(path)
    except OSError as e:
        return f"cannot check it ({e.strerror})"
    if stat.S_ISLNK(d.st_mode) or not stat.S_ISDIR(d.st_mode):
        return f"the folder {path.parent} is a link or not a folder"
    if d.st_uid != uid:
        return f"the folder {path.parent} is owned by user id {d.st_uid}, not by you ({uid})"
    if d.st_mode & 0o022:
        return f"the folder {path.parent} is writable by others (mode {stat.filemode(d.st_mode)}; chmod go-w it)"
    if not stat.S_ISREG(f.st_mode):
        return f"{path.name} is a link or not a regular file"
    if f.st_uid != uid:
        return f"{path} is owned by user id {f.st_uid}, not by you ({uid})"
    if f.st_mode & 0o022:
        return f"{path} is writable by others (mode {stat.filemode(f.st_mode)})"
    return None


def _load_private(name: str) -> ctypes.CDLL:
    """Build ``name`` into a fresh private (0700) temporary folder and load it; the folder is removed once the
    library is loaded (POSIX keeps a loaded file alive)."""
    private = Path(tempfile.mkdtemp(prefix="demopose-native-"))
    try:
        return ctypes.CDLL(str(build_library(name, folder=private)))
    finally:
        if os.name != "nt":
            shutil.rmtree(private, ignore_errors=True)


Signature = tuple[object, list[object]]
"""A C function's ctypes ``(restype, argtypes)``."""

POINTER = ctypes.c_void_p
INT64 = ctypes.c_int64


def load_library(name: str, signatures: dict[str, Signature] | None = None) -> ctypes.CDLL | None:
    """The loaded ``native/<name>.c`` library, built on first use, its functions typed with ``signatures``
    (``{function: (restype, argtypes)}``, applied when it is first loaded); None (after one warning) where it
    cannot be built or loaded, or when ``DEMOPOSE_NATIVE=0`` (read at the first use of each kernel in a
    process). A cached build that does not load (another user's unreadable file, a damaged file) or that is not
    safe to load (:func:`unsafe_reason`: a folder or file others can write to or own) is rebuilt once into a
    private temporary folder. Cached per process."""
    with _lock:
        if name in _loaded:
            return _loaded[name]
        lib = None
        if not native_disabled():
            try:
                try:
                    cached = build_library(name)
                    reason = unsafe_reason(cached)
                    if reason is not None:
                        warnings.warn(f"demopose: not loading the cached '{name}' kernel {cached}: {reason}; it is "
                                      f"built into a private temporary folder instead", RuntimeWarning, stacklevel=3)
                        lib = _load_private(name)
                    else:
                        lib = ctypes.CDLL(str(cached))
                except OSError:  # a cached file that does not load (damaged, unreadable, another user's folder)
                    lib = _load_private(name)
                for function, (restype, argtypes) in (signatures or {}).items():
                    getattr(lib, function).restype = restype
                    getattr(lib, function).argtypes = argtypes
            except (RuntimeError, OSError, AttributeError) as exc:
                lib = None
                warnings.warn(f"demopose: the compiled '{name}' kernel is unavailable, using the slower torch path "
                              f"instead (set DEMOPOSE_NATIVE=0 to silence this): {exc}", RuntimeWarning,
                              stacklevel=3)
        _loaded[name] = lib
        return lib
