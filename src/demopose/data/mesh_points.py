"""Mesh samples of each instance's ground-truth model: the targets of DeMo-Pose's Mesh-Point Loss.

DeMo-Pose (seeds/000 §2.4) supervises predicted mesh points with Poisson-disk samples ``M_gt`` of the
ground-truth mesh. :class:`MeshPointSource` gives, for instance ``j`` of a frame, ``(M, 3)`` samples in
the **metric object frame** (NOCS axes, centred on the tight box, metres): the normalised samples
(diagonal 1) times the instance's NOCS scale ``‖size‖``.

Where the samples come from, first hit wins:

1. the dataset's own precomputed file beside the mesh — the synthetic generator writes
   ``obj_models/real_<split>/<name>_mpl.npy`` (REAL layout) or ``obj_models/<split>/<synset>/<id>/model_mpl.npy``
   (CAMERA layout), normalised frame, :mod:`demopose.synth.writer`;
2. a cache file ``<cache_dir>/<kind>_<split>/<model name>_<M>.npy`` from an earlier run;
3. the mesh itself (``.obj``, CAMERA meshes with z flipped as in the NOCS code), centred on its box,
   scaled to diagonal 1 and Poisson-disk sampled (Yuksel 2015, :func:`demopose.geometry.sampling.poisson_disk_sample`)
   with a seed derived from the model name, then cached (atomic write).

The NOCS ``obj_models`` need no separate precompute step: the first epoch fills the cache, or run
:meth:`MeshPointSource.precompute` over a frame dataset up front.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from demopose.data.frame import Frame
from demopose.data.obj_models import camera_model_dir, load_mesh, real_model_file
from demopose.io import cache_dir

__all__ = ["MeshPointSource", "default_cache_dir", "normalise_mesh_vertices"]

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$DEMOPOSE_CACHE/mesh_points`` or ``~/.cache/demopose/mesh_points``."""
    return cache_dir("mesh_points")


def normalise_mesh_vertices(vertices: np.ndarray) -> np.ndarray:
    """``(V, 3)`` vertices -> centred on their axis-aligned box, scaled to box diagonal 1 (the NOCS frame)."""
    v = np.asarray(vertices, dtype=np.float64)
    lo, hi = v.min(0), v.max(0)
    diag = float(np.linalg.norm(hi - lo))
    if diag <= 0:
        raise ValueError("mesh: degenerate (zero-size) bounding box")
    return (v - (lo + hi) / 2) / diag


class MeshPointSource:
    """``source(frame, j) -> (M, 3)`` float32 mesh samples of instance ``j`` in its metric object frame.

    Args:
        num_points: ``M`` (must match the model's Mesh-Point head; DeMo-Pose: 1024).
        cache_dir: where sampled NOCS meshes are cached (default :func:`default_cache_dir`).
        memory: keep every normalised sample set in memory after its first load.

    Returns None for an instance whose model files cannot be found (logged once per model), so training
    on data without models degrades to no MPL on those rows rather than failing mid-epoch; use
    :meth:`precompute` to find such gaps before training.
    """

    def __init__(self, num_points: int = 1024, cache_dir: str | os.PathLike | None = None,
                 memory: bool = True) -> None:
        if int(num_points) < 1:
            raise ValueError(f"MeshPointSource.num_points: expected >= 1, got {num_points}")
        self.num_points = int(num_points)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.memory = memory
        self._mem: dict[str, np.ndarray | None] = {}

    # ------------------------------------------------------------------------------------------
    def __call__(self, frame: Frame, j: int) -> np.ndarray | None:
        if frame.poses is None:
            return None
        pts = self.normalised(frame, j)
        if pts is None:
            return None
        return (pts * frame.poses[j].scale).astype(np.float32)

    def normalised(self, frame: Frame, j: int) -> np.ndarray | None:
        """The ``(M, 3)`` samples of instance ``j`` in the normalised object frame (diagonal 1), or None."""
        loc = self._locate(frame, j)
        if loc is None:
            return None
        key, mesh_file, precomputed, flip_z = loc
        if key in self._mem:
            return self._mem[key]
        pts = self._load(key, mesh_file, precomputed, flip_z)
        if self.memory:
            self._mem[key] = pts
        return pts

    def precompute(self, frames: Sequence[Frame], progress: bool = True) -> tuple[int, int]:
        """Sample (and cache) the model of every instance of ``frames``; returns ``(found, missing)`` instances."""
        from tqdm.auto import tqdm

        found = missing = 0
        for i in tqdm(range(len(frames)), desc="mesh points", unit="frame", disable=not progress):
            f = frames[i]
            for j in range(len(f.instance_ids)):
                if self.normalised(f, j) is None:
                    missing += 1
                else:
                    found += 1
        return found, missing

    # ------------------------------------------------------------------------------------------
    def _locate(self, frame: Frame, j: int) -> tuple[str, Path, Path, bool] | None:
        """``(cache key, mesh file, precomputed npy, flip_z)`` of instance ``j``, or None without a layout."""
        if j >= len(frame.model_names) or frame.source is None:
            return None
        from demopose.data.nocs import parse_frame_path

        try:
            fp = parse_frame_path(frame.source)
        except ValueError:
            return None
        if fp.root is None:
            return None
        name = frame.model_names[j]
        if fp.kind == "real":
            mesh = real_model_file(fp.root, fp.split, name, ".obj")
            pre = real_model_file(fp.root, fp.split, name, "_mpl.npy")
            return f"real_{fp.split}/{name}", mesh, pre, False
        synset, _, model_id = name.rpartition("/")
        d = camera_model_dir(fp.root, fp.split, synset, model_id)
        return f"camera_{fp.split}/{name}", d / "model.obj", d / "model_mpl.npy", True

    def _cache_file(self, key: str) -> Path:
        return self.cache_dir / f"{key}_{self.num_points}.npy"

    def _load(self, key: str, mesh_file: Path, precomputed: Path, flip_z: bool) -> np.ndarray | None:
        if precomputed.is_file():
            pts = np.load(precomputed).astype(np.float32)
            if pts.ndim != 2 or pts.shape[1] != 3:
                raise ValueError(f"{precomputed}: expected (M, 3) mesh samples, got shape {pts.shape}")
            if len(pts) != self.num_points:
                raise ValueError(f"{precomputed}: holds {len(pts)} mesh samples but the model predicts "
                                 f"{self.num_points} (model mesh_points); set mesh_points={len(pts)} or "
                                 f"regenerate the data with SynthConfig.mpl_points={self.num_points}")
            return pts
        cache = self._cache_file(key)
        if cache.is_file():
            return np.load(cache).astype(np.float32)
        if not mesh_file.is_file():
            log.warning("%s: no mesh and no precomputed samples; no Mesh-Point Loss for %s", mesh_file, key)
            return None
        from demopose.geometry.sampling import poisson_disk_sample
        from demopose.io import write_bytes_atomic

        mesh = load_mesh(mesh_file, flip_z=flip_z)
        v = normalise_mesh_vertices(np.asarray(mesh.vertices))
        seed = int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], "little")
        pts = np.asarray(poisson_disk_sample((v, np.asarray(mesh.faces)), self.num_points, seed), np.float32)
        buf = io.BytesIO()
        np.save(buf, pts)
        try:
            write_bytes_atomic(cache, buf.getvalue())
        except OSError as e:  # a read-only cache is not fatal: we sample again next time
            log.warning("%s: could not write the mesh-point cache (%s)", cache, e)
        return pts
