"""Procedural distractor shapes (class 0): boxes, spheres, tori, cylinders, capsules, cones, blobs.

``build_distractor(rng) -> (mesh, face_colors)``: a closed mesh in metres (largest extent 4-20 cm) and
``(F, 3)`` uint8 RGB per face (solid, two-tone or striped).
"""

from __future__ import annotations

import numpy as np
import trimesh

from demopose.synth.primitives import box, closed_mesh, random_color

__all__ = ["DISTRACTOR_KINDS", "build_distractor"]

DISTRACTOR_KINDS: tuple[str, ...] = ("box", "sphere", "torus", "cylinder", "capsule", "cone", "blob")


def _blob(rng: np.random.Generator, size: float) -> trimesh.Trimesh:
    """Icosphere displaced by a few random low-frequency lobes (a smooth star-shaped closed surface)."""
    m = trimesh.creation.icosphere(subdivisions=3)
    v = m.vertices
    disp = np.zeros(len(v))
    for _ in range(4):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        disp += rng.uniform(0.05, 0.25) * np.cos(rng.integers(1, 4) * np.arccos(np.clip(v @ d, -1, 1)))
    v = v * (1 + disp)[:, None] * rng.uniform(0.6, 1.0, size=3)
    return closed_mesh(v * size / 2, m.faces)


def build_distractor(rng: np.random.Generator, kind: str | None = None) -> tuple[trimesh.Trimesh, np.ndarray]:
    """A random distractor; ``kind`` one of :data:`DISTRACTOR_KINDS` (random when None)."""
    if kind is None:
        kind = str(rng.choice(DISTRACTOR_KINDS))
    if kind not in DISTRACTOR_KINDS:
        raise ValueError(f"kind: expected one of {DISTRACTOR_KINDS}, got {kind!r}")
    s = rng.uniform(0.04, 0.20)
    if kind == "box":
        mesh = box(s * rng.uniform(0.3, 1.0, size=3), subdivisions=2)
    elif kind == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=s / 2)
    elif kind == "torus":
        r = rng.uniform(0.1, 0.3) * s / 2
        mesh = trimesh.creation.torus(major_radius=s / 2 - r, minor_radius=r, major_sections=40, minor_sections=16)
    elif kind == "cylinder":
        mesh = trimesh.creation.cylinder(radius=s / 2 * rng.uniform(0.2, 1.0), height=s, sections=32)
    elif kind == "capsule":
        r = s / 2 * rng.uniform(0.2, 0.5)
        mesh = trimesh.creation.capsule(height=s - 2 * r, radius=r, count=[16, 16])
    elif kind == "cone":
        mesh = trimesh.creation.cone(radius=s / 2 * rng.uniform(0.3, 1.0), height=s, sections=32)
    else:
        mesh = _blob(rng, s)
    mesh = closed_mesh(mesh.vertices, mesh.faces)
    # random orientation, then colours in the final frame
    q = rng.normal(size=4)
    mesh.apply_transform(trimesh.transformations.quaternion_matrix(q / np.linalg.norm(q)))
    c = mesh.triangles_center
    colors = np.tile(random_color(rng, s=(0.0, 1.0), v=(0.15, 1.0)), (len(c), 1))
    style = rng.integers(3)
    if style > 0:
        d = rng.normal(size=3)
        proj = c @ (d / np.linalg.norm(d))
        c2 = random_color(rng, s=(0.0, 1.0), v=(0.15, 1.0))
        if style == 1:  # two-tone
            colors[proj > np.median(proj)] = c2
        else:  # stripes
            period = s * rng.uniform(0.1, 0.3)
            colors[np.floor(proj / period).astype(int) % 2 == 1] = c2
    return mesh, colors
