"""NOCS ``obj_models``: object extents and meshes.

Layout (notes/depth_and_eval.md §5.1, §5.6)::

    obj_models/{train,val}/<synset>/<model_id>/{model.obj, bbox.txt}     CAMERA (ShapeNet, normalised)
    obj_models/{real_train,real_test}/<name>.{obj,txt}                   REAL (<name> ends in _norm)

* CAMERA ``bbox.txt``: two rows, the max corner and the min corner of the normalised model (diagonal 1).
* REAL ``<name>.txt``: the three metric extents (metres); ``<name>.obj`` vertices are metric and
  centred. The NOCS scale ``s`` of a REAL instance equals ``‖extents‖``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = [
    "camera_model_dir",
    "load_mesh",
    "read_bbox_txt",
    "read_extents_txt",
    "real_model_file",
]


def _loadtxt(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as e:
        raise ValueError(f"{path}: not a table of numbers ({e})") from None


def read_extents_txt(path: str | os.PathLike) -> np.ndarray:
    """REAL ``<name>_norm.txt`` -> ``(3,)`` metric extents (metres, object x, y, z)."""
    p = Path(path)
    a = _loadtxt(p).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{p}: expected 3 positive extents (metres), got {a.tolist()}")
    return a


def read_bbox_txt(path: str | os.PathLike) -> np.ndarray:
    """CAMERA ``bbox.txt`` -> ``(3,)`` normalised extents ``max - min`` (the diagonal is ~1)."""
    p = Path(path)
    a = _loadtxt(p)
    if a.shape != (2, 3):
        raise ValueError(f"{p}: expected two rows (max corner, min corner) of 3 numbers, got shape {a.shape}")
    ext = a[0] - a[1]
    if np.any(ext <= 0):
        raise ValueError(f"{p}: the first row must be the max corner and the second the min corner")
    return ext


def real_model_file(root: str | os.PathLike, split: str, name: str, suffix: str = ".txt") -> Path:
    """Path of a REAL model file: ``root/obj_models/real_<split>/<name><suffix>``."""
    return Path(root) / "obj_models" / f"real_{split}" / f"{name}{suffix}"


def camera_model_dir(root: str | os.PathLike, split: str, synset: str, model_id: str) -> Path:
    """Folder of a CAMERA model: ``root/obj_models/<split>/<synset>/<model_id>``."""
    return Path(root) / "obj_models" / split / synset / model_id


def load_mesh(path: str | os.PathLike, flip_z: bool = False):
    """Load a mesh with trimesh as one ``trimesh.Trimesh`` (scenes are concatenated, no processing).

    Args:
        path: an OBJ/PLY/GLB file.
        flip_z: negate z of the vertices (NOCS ``load_mesh`` and SPD do this for CAMERA ShapeNet meshes
            so that they match the coordinate maps).

    Returns:
        the mesh; vertices in the file's units (REAL: metres; CAMERA: normalised, diagonal 1).
    """
    import trimesh

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found")
    try:
        mesh = trimesh.load(p, force="mesh", process=False, skip_materials=True)
    except Exception as e:  # trimesh raises many exception types for malformed files
        raise ValueError(f"{p}: could not load the mesh ({type(e).__name__}: {e})") from None
    if len(mesh.vertices) == 0:
        raise ValueError(f"{p}: the mesh has no vertices")
    if flip_z:
        v = np.asarray(mesh.vertices).copy()
        v[:, 2] *= -1
        mesh = trimesh.Trimesh(v, np.asarray(mesh.faces)[:, ::-1], process=False)
    return mesh
