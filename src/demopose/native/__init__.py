"""Compiled CPU kernels for the hot loops of inference, built on first use (:mod:`demopose.native._build`).

Each kernel has a torch path that computes the same values; the kernel is used only where it applies (CPU
float32 tensors, no gradient recorded, not while exporting or compiling) and where a C compiler is available.
``DEMOPOSE_NATIVE=0`` turns them all off.
"""

from demopose.native._build import applicable, load_library, native_disabled

__all__ = ["applicable", "load_library", "native_disabled"]
