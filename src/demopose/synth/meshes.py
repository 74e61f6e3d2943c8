"""Object meshes for the synthetic generator: procedural NOCS categories, distractors, user meshes.

Every object is returned as a :class:`SynthObject` in the NOCS canonical frame (notes/depth_and_eval.md
§5.6): metres, centred on its tight axis-aligned box, y up; category-specific front directions are
documented in :mod:`demopose.synth.shapes` (mug handle +x, camera lens +x, laptop screen towards +x).
The NOCS normalised model is ``mesh.vertices / norm(extents)``.

Sizes: each procedural category draws its part dimensions around the REAL275 mean size
(``NOCS_REAL[name].mean_size``, notes/depth_and_eval.md §1.5). Versions 1-2 (``shapes=None``): roughly +-25 %
per part; the resulting extents stay inside :data:`SIZE_RANGES` (a multiple of the mean size, per axis; tests
check it). Version 3 (a :class:`~demopose.synth.settings.ShapeVariety`): the proportions come from the shape
knobs and the finished mesh is scaled uniformly so that its diagonal (the NOCS scale) is a draw from
``shapes.size(category)`` times the mean size's diagonal; the extents then stay inside :data:`SIZE_RANGES_V3`
with the default knobs.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np
import trimesh

from demopose.categories import NOCS_REAL
from demopose.synth.distractors import build_distractor
from demopose.synth.primitives import random_color
from demopose.synth.shapes import BUILDERS

__all__ = [
    "CATEGORIES",
    "SIZE_RANGES",
    "SIZE_RANGES_V3",
    "SynthObject",
    "canonicalize_mesh",
    "load_user_mesh",
    "make_distractor",
    "make_object",
]

log = logging.getLogger(__name__)

CATEGORIES: tuple[str, ...] = NOCS_REAL.names
"""Procedural categories, in NOCS id order: bottle, bowl, camera, can, laptop, mug."""

SIZE_RANGES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # (low, high) multiples of the REAL mean size (x, y, z) that every procedural instance stays inside;
    # the laptop's x and y also depend on the lid opening angle (100-145 deg)
    "bottle": ((0.7, 0.7, 0.7), (1.35, 1.35, 1.35)),
    "bowl": ((0.7, 0.7, 0.7), (1.35, 1.35, 1.35)),
    "camera": ((0.7, 0.7, 0.7), (1.35, 1.35, 1.35)),
    "can": ((0.7, 0.7, 0.7), (1.35, 1.35, 1.35)),
    "laptop": ((0.55, 0.5, 0.7), (1.6, 1.65, 1.3)),
    "mug": ((0.7, 0.7, 0.7), (1.35, 1.4, 1.35)),
}

SIZE_RANGES_V3: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # (low, high) multiples of the REAL mean size (x, y, z) that every version-3 instance with the default
    # ShapeVariety stays inside (the extremes of 300 draws per category, widened by ~5 %; tests check it)
    "bottle": ((0.6, 0.7, 0.6), (1.5, 1.35, 1.45)),
    "bowl": ((0.75, 0.5, 0.75), (1.3, 1.5, 1.3)),
    "camera": ((0.4, 0.45, 0.6), (2.3, 1.5, 1.45)),
    "can": ((0.65, 0.6, 0.6), (1.7, 1.35, 1.6)),
    "laptop": ((0.55, 0.4, 0.7), (1.45, 1.75, 1.45)),
    "mug": ((0.6, 0.55, 0.55), (1.4, 2.2, 1.3)),
}


@dataclass
class SynthObject:
    """One object model for the generator.

    Attributes:
        name: unique model name, e.g. ``"mug_3f2a9c01"`` (deterministic from the generator).
        category: NOCS category name, or ``"distractor"``.
        class_id: id in :data:`demopose.categories.NOCS_REAL` (0 for distractors).
        mesh: metres, NOCS canonical frame, centred on its tight axis-aligned box, y up.
        extents: ``(3,)`` tight box extents in metres (``== mesh.extents``).
        face_colors: ``(F, 3)`` uint8 RGB albedo per face.
        handle_faces: ``(F,)`` bool, the mug handle's faces (version 3), or None (the scene finds them
            geometrically, :func:`demopose.synth.scene._handle_faces`).
        params: the drawn shape parameters (version 3; see :mod:`demopose.synth.shapes`).
    """

    name: str
    category: str
    class_id: int
    mesh: trimesh.Trimesh
    extents: np.ndarray
    face_colors: np.ndarray
    handle_faces: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    @property
    def scale(self) -> float:
        """NOCS scale: the tight-box diagonal in metres (``norm(extents)``)."""
        return float(np.linalg.norm(self.extents))


def _finish(name: str, category: str, class_id: int, mesh: trimesh.Trimesh, colors: np.ndarray) -> SynthObject:
    """Centre ``mesh`` on its tight box (in place) and wrap it."""
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2)
    colors = np.ascontiguousarray(np.asarray(colors, dtype=np.uint8).reshape(len(mesh.faces), 3))
    return SynthObject(name, category, int(class_id), mesh, np.asarray(mesh.extents, dtype=np.float64).copy(),
                       colors)


def _name(prefix: str, rng: np.random.Generator) -> str:
    return f"{prefix}_{int(rng.integers(0, 2**32)):08x}"


def make_object(category: str, rng: np.random.Generator, shapes=None) -> SynthObject:
    """A new procedural instance of ``category`` (one of :data:`CATEGORIES`), deterministic given ``rng``.

    Args:
        category: category name.
        rng: the model's generator.
        shapes: None (generator versions 1-2's shapes) or a :class:`~demopose.synth.settings.ShapeVariety`
            (version 3: the mesh is scaled uniformly to a diagonal drawn from ``shapes.size(category)`` times
            the REAL mean size's diagonal; ``params`` holds the drawn shape parameters and ``"scale"``,
            the diagonal factor).

    Raises:
        ValueError: unknown category.
    """
    if category not in BUILDERS:
        raise ValueError(f"category: expected one of {CATEGORIES}, got {category!r}")
    cat = NOCS_REAL[category]
    name = _name(category, rng)
    mean = np.asarray(cat.mean_size)
    if shapes is None:
        mesh, colors = BUILDERS[category](rng, mean)
        return _finish(name, category, cat.id, mesh, colors)
    scale = float(rng.uniform(*shapes.size(category)))
    info: dict = {}
    mesh, colors = BUILDERS[category](rng, mean, shapes, info)
    factor = scale * float(np.linalg.norm(mean)) / float(np.linalg.norm(mesh.extents))
    mesh.apply_scale(factor)
    obj = _finish(name, category, cat.id, mesh, colors)
    n_handle = int(info.pop("handle_faces", 0))
    if category == "mug":
        obj.handle_faces = np.arange(len(mesh.faces)) >= len(mesh.faces) - n_handle
    obj.params = {"scale": scale, "factor": factor,
                  **{k: float(v) if isinstance(v, np.floating) else v for k, v in info.items()}}
    return obj


def make_distractor(rng: np.random.Generator) -> SynthObject:
    """A random class-0 distractor (box, sphere, torus, cylinder, capsule, cone or blob), 4-20 cm."""
    name = _name("distractor", rng)
    mesh, colors = build_distractor(rng)
    return _finish(name, "distractor", 0, mesh, colors)


# ----------------------------------------------------------------------------------------- user meshes
_AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def _axis(spec: str, field: str) -> np.ndarray:
    s = str(spec).strip().lower()
    sign = -1.0 if s.startswith("-") else 1.0
    key = s.lstrip("+-")
    if key not in _AXES:
        raise ValueError(f"{field}: expected one of x, y, z, -x, -y, -z, got {spec!r}")
    return sign * np.array(_AXES[key])


def _canonical_rotation(up_axis: str, front_axis: str | None) -> np.ndarray:
    """``(3, 3)`` rotation taking the source ``up_axis`` to +y and ``front_axis`` (if given) to +x."""
    up = _axis(up_axis, "up_axis")
    if front_axis is None:
        # the smallest rotation: +x stays +x, unless x is the up axis (then a 90 deg turn about z)
        front = np.array([0.0, -up[0], 0.0]) if abs(up[0]) > 0.5 else np.array([1.0, 0.0, 0.0])
    else:
        front = _axis(front_axis, "front_axis")
        if abs(front @ up) > 0.5:
            raise ValueError(f"front_axis: must differ from up_axis, got up={up_axis!r} front={front_axis!r}")
    rot = np.stack([front, up, np.cross(front, up)])
    return rot


def _geometry_colors(mesh: trimesh.Trimesh) -> np.ndarray | None:
    """``(F, 3)`` uint8 face colours of one mesh, or None when it has none.

    Sources, in order: a texture image sampled at the vertex UVs, the material's main (diffuse /
    base) colour, vertex or face colours.
    """
    vis = getattr(mesh, "visual", None)
    nf = len(mesh.faces)
    fc = None
    if isinstance(vis, trimesh.visual.texture.TextureVisuals):
        mat = vis.material
        image = getattr(mat, "image", None) if mat is not None else None
        if image is None and mat is not None:
            image = getattr(mat, "baseColorTexture", None)
        uv = getattr(vis, "uv", None)
        if image is not None and uv is not None and len(uv) == len(mesh.vertices):
            try:
                vc = np.asarray(vis.to_color().vertex_colors, dtype=np.float64)
                fc = np.round(vc[np.asarray(mesh.faces)].mean(axis=1))
            except (ValueError, TypeError, AttributeError, IndexError) as err:
                log.debug("texture colours could not be sampled: %s", err)
        if fc is None and mat is not None:
            main = getattr(mat, "main_color", None)
            if main is not None:
                fc = np.tile(np.asarray(main, dtype=np.uint8).reshape(-1)[:4], (nf, 1))
    elif vis is not None and getattr(vis, "defined", False):
        fc = np.asarray(vis.face_colors)
    if fc is None or fc.ndim != 2 or fc.shape[0] != nf or fc.shape[1] < 3:
        return None
    return np.ascontiguousarray(fc[:, :3]).astype(np.uint8)


def canonicalize_mesh(mesh: trimesh.Trimesh, up_axis: str = "y", front_axis: str | None = None,
                      target_size=None) -> trimesh.Trimesh:
    """Rotate ``mesh`` so ``up_axis`` is +y (and ``front_axis`` is +x), centre its tight box, rescale.

    Args:
        mesh: any mesh (copied, not modified).
        up_axis: source axis that points up ('x', 'y', 'z', '-x', '-y', '-z').
        front_axis: source axis that becomes canonical +x (mug handle, camera lens, laptop screen side).
        target_size: None (keep size), a float (tight-box diagonal in metres, uniform scale) or ``(3,)``
            extents in metres (per-axis scale, changes proportions).
    """
    out = mesh.copy()
    tf = np.eye(4)
    tf[:3, :3] = _canonical_rotation(up_axis, front_axis)
    out.apply_transform(tf)
    lo, hi = out.bounds
    out.apply_translation(-(lo + hi) / 2)
    if target_size is not None:
        ts = np.asarray(target_size, dtype=np.float64)
        ext = np.asarray(out.extents, dtype=np.float64)
        if ts.ndim == 0:
            if not ts > 0:
                raise ValueError(f"target_size: expected a positive diagonal in metres, got {target_size!r}")
            scale = np.full(3, float(ts) / np.linalg.norm(ext))
        elif ts.shape == (3,) and np.all(ts > 0):
            scale = ts / np.maximum(ext, 1e-12)
        else:
            raise ValueError(f"target_size: expected a float or 3 positive extents, got {target_size!r}")
        out.apply_transform(np.diag([*scale, 1.0]))
    return out


def load_user_mesh(path, category: str, rng: np.random.Generator | None = None, target_size=None,
                   up_axis: str = "y", front_axis: str | None = None) -> SynthObject:
    """Load an OBJ/GLB/PLY/... mesh with trimesh and canonicalise it into a :class:`SynthObject`.

    A scene is flattened into one mesh (node transforms applied). Face colours come from vertex colours,
    face colours, textures (sampled at the vertices) or material colours when present, else one random
    colour.

    Args:
        path: mesh file.
        category: a NOCS category name or ``"distractor"``.
        rng: generator for the fallback colour (default ``np.random.default_rng(0)``).
        target_size: tight-box diagonal in metres (float) or ``(3,)`` extents; default: the diagonal of
            the category's REAL mean size (native size for distractors).
        up_axis: source axis that points up; front_axis: source axis that becomes +x (see
            :func:`canonicalize_mesh`).

    Raises:
        FileNotFoundError: no such file. ValueError: unknown category, unreadable or empty mesh.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: mesh file not found")
    if category == "distractor":
        class_id = 0
    elif category in CATEGORIES:
        class_id = NOCS_REAL[category].id
        if target_size is None:
            target_size = float(np.linalg.norm(NOCS_REAL[category].mean_size))
    else:
        raise ValueError(f"category: expected one of {CATEGORIES} or 'distractor', got {category!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    try:
        loaded = trimesh.load(path, process=False)
    except Exception as err:
        raise ValueError(f"{path}: trimesh could not read the mesh ({err})") from err
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)]
    elif isinstance(loaded, trimesh.Trimesh):
        geoms = [loaded]
    else:
        geoms = []
    geoms = [g for g in geoms if len(g.faces) > 0]
    if not geoms:
        raise ValueError(f"{path}: no triangle faces found (expected a surface mesh)")
    fallback = random_color(rng)
    cols = []
    for g in geoms:
        fc = _geometry_colors(g)
        cols.append(np.tile(fallback, (len(g.faces), 1)) if fc is None else fc)
    verts, faces, off = [], [], 0
    for g in geoms:
        verts.append(np.asarray(g.vertices, dtype=np.float64))
        faces.append(np.asarray(g.faces, dtype=np.int64) + off)
        off += len(g.vertices)
    mesh = trimesh.Trimesh(np.concatenate(verts), np.concatenate(faces), process=False)
    mesh = canonicalize_mesh(mesh, up_axis, front_axis, target_size)
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", os.path.splitext(os.path.basename(path))[0]).strip("_") or "mesh"
    name = stem if stem.startswith(category) else f"{category}_{stem}"
    return _finish(name, category, class_id, mesh, np.concatenate(cols))
