"""Closed mesh building blocks for the procedural objects: lathe, swept tube, boxes, cylinders, colours.

Every builder returns a closed, consistently wound :class:`trimesh.Trimesh` with outward normals
(positive volume), in metres. Objects are assembled from several such closed parts that may
interpenetrate (a mug handle goes into the wall): each edge is still shared by exactly two faces, so
the union passes ``is_watertight``, and a ray caster sees the correct outer surface.
"""

from __future__ import annotations

import colorsys

import numpy as np
import trimesh

__all__ = [
    "closed_mesh",
    "revolve",
    "tube",
    "box",
    "grid_box",
    "insert_breaks",
    "cylinder",
    "hsv_color",
    "random_color",
    "concat",
]


def closed_mesh(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    """A mesh from ``vertices (V, 3)`` and ``faces (F, 3)``, faces flipped if its signed volume is negative."""
    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64),
                           process=False)
    if mesh.volume < 0:
        mesh.faces = mesh.faces[:, ::-1].copy()
    return mesh


def revolve(profile: np.ndarray, sections: int = 48) -> trimesh.Trimesh:
    """Lathe a profile about the y axis into a closed surface.

    Args:
        profile: ``(K, 2)`` points ``(r, y)`` in metres, ``r >= 0``; the first and last points must lie on
            the axis (``r == 0``), they become the two poles, so the surface is closed. Interior points
            need ``r > 0``. The profile may go up the outside and back down the inside (a bowl or a
            mug wall with thickness).
        sections: number of segments around the axis.

    Returns:
        ``Trimesh`` with ``2 * sections * (K - 2)`` faces.
    """
    p = np.asarray(profile, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3:
        raise ValueError(f"profile: expected shape (K>=3, 2), got {p.shape}")
    if p[0, 0] != 0 or p[-1, 0] != 0 or np.any(p[1:-1, 0] <= 0):
        raise ValueError("profile: first and last r must be 0 and interior r > 0")
    k = len(p) - 2  # number of rings
    s = int(sections)
    phi = 2 * np.pi * np.arange(s) / s
    r, y = p[1:-1, 0], p[1:-1, 1]
    rings = np.stack([r[:, None] * np.cos(phi)[None], np.repeat(y[:, None], s, 1),
                      r[:, None] * np.sin(phi)[None]], -1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, p[0, 1], 0.0]], rings, [[0.0, p[-1, 1], 0.0]]])
    j = np.arange(s)
    jn = (j + 1) % s
    top = 1 + k * s
    faces = [np.stack([np.zeros(s, int), 1 + jn, 1 + j], 1)]  # bottom fan
    for i in range(k - 1):
        a, b = 1 + i * s, 1 + (i + 1) * s
        faces.append(np.stack([a + j, a + jn, b + jn], 1))
        faces.append(np.stack([a + j, b + jn, b + j], 1))
    last = 1 + (k - 1) * s
    faces.append(np.stack([np.full(s, top), last + j, last + jn], 1))  # top fan
    # interleave quads so face order follows the profile segments
    f = [faces[0]]
    for i in range(k - 1):
        f.append(np.stack([faces[1 + 2 * i], faces[2 + 2 * i]], 1).reshape(-1, 3))
    f.append(faces[-1])
    return closed_mesh(verts, np.concatenate(f))


def tube(path: np.ndarray, radius: float, sections: int = 12, plane_normal=(0.0, 0.0, 1.0)) -> trimesh.Trimesh:
    """A closed tube (capped at both ends) of circular section swept along a planar polyline.

    Args:
        path: ``(P, 3)`` centre-line points in metres, lying in a plane.
        radius: tube radius in metres.
        sections: vertices per cross-section.
        plane_normal: normal of the path's plane (the binormal of every frame).
    """
    path = np.asarray(path, dtype=np.float64)
    b = np.asarray(plane_normal, dtype=np.float64)
    b = b / np.linalg.norm(b)
    t = np.gradient(path, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    n = np.cross(b[None], t)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    a = 2 * np.pi * np.arange(sections) / sections
    ring = (np.cos(a)[None, :, None] * n[:, None] + np.sin(a)[None, :, None] * b[None, None])
    verts = (path[:, None] + radius * ring).reshape(-1, 3)
    m, s = len(path), sections
    j = np.arange(s)
    jn = (j + 1) % s
    faces = []
    for i in range(m - 1):
        p0, p1 = i * s, (i + 1) * s
        faces += [np.stack([p0 + j, p0 + jn, p1 + jn], 1), np.stack([p0 + j, p1 + jn, p1 + j], 1)]
    c0, c1 = len(verts), len(verts) + 1
    verts = np.concatenate([verts, path[[0, -1]]])
    faces.append(np.stack([np.full(s, c0), jn, j], 1))
    last = (m - 1) * s
    faces.append(np.stack([np.full(s, c1), last + j, last + jn], 1))
    return closed_mesh(verts, np.concatenate(faces))


def box(extents, center=(0.0, 0.0, 0.0), subdivisions: int = 0) -> trimesh.Trimesh:
    """Axis-aligned closed box, ``extents (3,)`` metres, centred at ``center``; each subdivision x4 faces."""
    m = trimesh.creation.box(extents=np.asarray(extents, dtype=np.float64))
    for _ in range(subdivisions):
        m = m.subdivide()
    m.apply_translation(np.asarray(center, dtype=np.float64))
    return closed_mesh(m.vertices, m.faces)


def grid_box(xs, ys, zs) -> trimesh.Trimesh:
    """Closed axis-aligned box whose faces are gridded at the given breakpoints.

    Args:
        xs, ys, zs: sorted coordinates (metres) along each axis, first and last are the box faces;
            interior values become grid lines, so per-face colour regions can follow them exactly.
    """
    axes = [np.asarray(a, dtype=np.float64) for a in (xs, ys, zs)]
    verts, faces, off = [], [], 0
    for a in range(3):
        b, c = (a + 1) % 3, (a + 2) % 3
        gb, gc = np.meshgrid(axes[b], axes[c], indexing="ij")
        nb, nc = gb.shape
        i, j = np.meshgrid(np.arange(nb - 1), np.arange(nc - 1), indexing="ij")
        q0 = (i * nc + j).ravel()
        q1, q2, q3 = q0 + nc, q0 + nc + 1, q0 + 1
        # (b, c) is cyclic after a, so the quad q0 q1 q2 q3 faces +a
        quads = np.concatenate([np.stack([q0, q1, q2], 1), np.stack([q0, q2, q3], 1)])
        for value, flip in ((axes[a][0], True), (axes[a][-1], False)):
            p = np.zeros((nb * nc, 3))
            p[:, a] = value
            p[:, b] = gb.ravel()
            p[:, c] = gc.ravel()
            verts.append(p)
            faces.append((quads[:, ::-1] if flip else quads) + off)
            off += len(p)
    mesh = trimesh.Trimesh(np.concatenate(verts), np.concatenate(faces), process=False)
    mesh.merge_vertices()
    return closed_mesh(mesh.vertices, mesh.faces)


def insert_breaks(profile: np.ndarray, ys) -> np.ndarray:
    """Insert points into a ``(K, 2)`` ``(r, y)`` profile where its segments cross the heights ``ys``.

    After :func:`revolve`, every height in ``ys`` is a ring of vertices, so colour bands defined by
    those heights have straight edges.
    """
    p = np.asarray(profile, dtype=np.float64)
    out = [p[0]]
    for a, b in zip(p[:-1], p[1:]):
        lo, hi = sorted((a[1], b[1]))
        cut = [y for y in ys if lo + 1e-9 < y < hi - 1e-9]
        t = sorted((y - a[1]) / (b[1] - a[1]) for y in cut)
        out += [a + ti * (b - a) for ti in t]
        out.append(b)
    return np.array(out)


_TO_AXIS = {
    "x": trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]),
    "y": trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]),
    "z": np.eye(4),
}


def cylinder(radius: float, length: float, axis: str = "y", center=(0.0, 0.0, 0.0),
             sections: int = 32) -> trimesh.Trimesh:
    """Closed cylinder of ``radius`` and ``length`` (metres) along ``axis`` ('x', 'y' or 'z'), centred."""
    m = trimesh.creation.cylinder(radius=radius, height=length, sections=sections, transform=_TO_AXIS[axis])
    m.apply_translation(np.asarray(center, dtype=np.float64))
    return closed_mesh(m.vertices, m.faces)


def hsv_color(h: float, s: float, v: float) -> np.ndarray:
    """``(3,)`` uint8 RGB from HSV in [0, 1]."""
    return np.round(np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255).astype(np.uint8)


def random_color(rng: np.random.Generator, s=(0.3, 0.9), v=(0.3, 0.95)) -> np.ndarray:
    """A random saturated ``(3,)`` uint8 RGB colour; ``s`` and ``v`` are (low, high) ranges."""
    return hsv_color(rng.random(), rng.uniform(*s), rng.uniform(*v))


def concat(parts: list[tuple[trimesh.Trimesh, np.ndarray]]) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Concatenate ``(mesh, face_colors (F, 3) uint8)`` parts into one mesh and one colour array."""
    meshes = [p[0] for p in parts]
    cols = [np.broadcast_to(np.asarray(c, dtype=np.uint8), (len(m.faces), 3)) for m, c in parts]
    verts, faces, off = [], [], 0
    for m in meshes:
        verts.append(m.vertices)
        faces.append(m.faces + off)
        off += len(m.vertices)
    mesh = trimesh.Trimesh(np.concatenate(verts), np.concatenate(faces), process=False)
    return mesh, np.ascontiguousarray(np.concatenate(cols))
