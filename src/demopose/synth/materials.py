"""Object materials for the synthetic generator: per-pixel procedural textures, gloss and dark objects.

A :class:`Material` modifies an instance's per-face albedo at shading time, per pixel, from the hit
point's **object-space** coordinates (the NOCS-normalised point ``p = x_obj / ‖extents‖`` in
``[-0.5, 0.5]³``), so no UV map is needed and the texture sticks to the object under any pose:

* ``noise``: a smooth random field (sum of random sinusoids of ``p``) blended towards a second colour
  (mottled ceramics, plastic, paper);
* ``stripes``: bands along a random object direction (printed stripes, wood grain);
* ``label``: a printed label on the body: a cylindrical band ``y0 < p_y < y1`` divided into cells by
  azimuth ``atan2(p_z, p_x)`` and height, each cell a colour of a small palette or the background —
  text- and logo-like blocks of saturated colour, as on cans, bottles and mugs;
* ``dots``: a regular dot pattern on a 3D lattice (prints, speckled enamel).

``dark`` scales the albedo down (black plastic, camera bodies, dark mugs): a real structured-light
sensor loses depth on such surfaces (the IR pattern is absorbed), which :mod:`demopose.synth.noise`
models from the albedo. ``specular``/``shininess`` add a Blinn-Phong highlight (Blinn, "Models of light
reflection for computer synthesized pictures", SIGGRAPH 1977).

Everything is a pure function of the material record and the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TEXTURE_KINDS", "Material", "apply_material", "sample_material"]

TEXTURE_KINDS: tuple[str, ...] = ("noise", "stripes", "label", "dots")
"""Procedural texture kinds of :class:`Material` (``"none"``: the flat per-face colours)."""


@dataclass
class Material:
    """How an instance's surface looks beyond its per-face colours.

    Attributes:
        kind: ``"none"`` or one of :data:`TEXTURE_KINDS`.
        colors: ``(C, 3)`` float32 RGB 0..255, the texture's palette.
        freq: ``(4, 3)`` float32 random spatial frequencies (cycles per unit of normalised space) and
            ``phase (4,)``: the noise field / stripe direction.
        strength: blend weight of the texture over the face colours, 0..1.
        band: ``(y0, y1)`` label band in normalised y. cells: ``(azimuth cells, height cells)``.
        table: ``(256,)`` int palette index per hashed cell (-1 = face colour shows through).
        dark: albedo multiplier (1 = unchanged). specular: highlight weight 0..1. shininess: Blinn exponent.
    """

    kind: str = "none"
    colors: np.ndarray = field(default_factory=lambda: np.zeros((1, 3), np.float32))
    freq: np.ndarray = field(default_factory=lambda: np.zeros((4, 3), np.float32))
    phase: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    strength: float = 1.0
    band: tuple[float, float] = (-0.3, 0.3)
    cells: tuple[int, int] = (8, 4)
    table: np.ndarray = field(default_factory=lambda: np.full(256, -1, np.int64))
    dark: float = 1.0
    specular: float = 0.0
    shininess: float = 16.0


def _random_rgb(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 3)`` float32 colours 0..255: saturated, pastel, near-white and near-black mixed."""
    from demopose.synth.primitives import random_color

    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            c = random_color(rng, s=(0.5, 1.0), v=(0.5, 1.0))
        elif r < 0.75:
            c = random_color(rng, s=(0.0, 0.4), v=(0.75, 1.0))
        else:
            c = random_color(rng, s=(0.0, 0.3), v=(0.05, 0.35))
        out.append(c)
    return np.asarray(out, np.float32).reshape(n, 3)


def sample_material(rng: np.random.Generator, textured: float, specular: float, dark: float,
                    specular_strength: tuple[float, float] = (0.15, 0.6),
                    shininess: tuple[float, float] = (8.0, 80.0),
                    dark_value: tuple[float, float] = (0.05, 0.2)) -> Material:
    """A random material: textured with probability ``textured``, glossy with ``specular``, dark with ``dark``.

    Always draws the same number of values from ``rng`` whatever the outcome (so one knob does not
    reshuffle the others).
    """
    u = rng.random(3)
    kind = str(TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))])
    colors = _random_rgb(rng, 4)
    freq = rng.normal(size=(4, 3)).astype(np.float32) * np.array([[2.0], [4.0], [8.0], [16.0]], np.float32)
    phase = rng.uniform(0, 2 * np.pi, 4).astype(np.float32)
    strength = float(rng.uniform(0.5, 1.0))
    y0 = float(rng.uniform(-0.35, 0.0))
    band = (y0, y0 + float(rng.uniform(0.2, 0.6)))
    cells = (int(rng.integers(4, 24)), int(rng.integers(2, 10)))
    table = np.where(rng.random(256) < rng.uniform(0.3, 0.8), rng.integers(0, 4, 256), -1)
    ks = float(rng.uniform(*specular_strength))
    sh = float(rng.uniform(*shininess))
    dv = float(rng.uniform(*dark_value))
    return Material(kind=kind if u[0] < textured else "none", colors=colors, freq=freq, phase=phase,
                    strength=strength, band=band, cells=cells, table=table.astype(np.int64),
                    dark=dv if u[2] < dark else 1.0, specular=ks if u[1] < specular else 0.0, shininess=sh)


def apply_material(albedo: np.ndarray, p: np.ndarray, m: Material) -> np.ndarray:
    """Per-pixel albedo of a textured instance.

    Args:
        albedo: ``(N, 3)`` float32 per-face colours (0..255) of the instance's hit pixels.
        p: ``(N, 3)`` object-space hit points, NOCS-normalised (``[-0.5, 0.5]``).
        m: the instance's material.

    Returns:
        ``(N, 3)`` float32 albedo 0..255.
    """
    out = albedo.astype(np.float32, copy=True)
    p = p.astype(np.float32, copy=False)
    if m.kind != "none" and len(p):
        if m.kind == "noise":
            s = np.sin(p @ m.freq[:3].T + m.phase[:3]).sum(1) / 3.0  # (N,) in [-1, 1]
            w = np.clip(0.5 + 0.8 * s, 0, 1)[:, None] * m.strength
            out = out * (1 - w) + m.colors[0] * w
        elif m.kind == "stripes":
            d = m.freq[1] / max(float(np.linalg.norm(m.freq[1])), 1e-6) * (4 + np.linalg.norm(m.freq[2]))
            k = (np.floor(p @ d + m.phase[0]) % 2).astype(bool)
            out[k] = out[k] * (1 - m.strength) + m.colors[1] * m.strength
        elif m.kind == "label":
            y0, y1 = m.band
            inb = (p[:, 1] > y0) & (p[:, 1] < y1)
            az = (np.arctan2(p[:, 2], p[:, 0]) + np.pi) / (2 * np.pi)
            ca = np.floor(az * m.cells[0]).astype(np.int64)
            cy = np.floor((p[:, 1] - y0) / max(y1 - y0, 1e-6) * m.cells[1]).astype(np.int64)
            idx = m.table[(ca * 31 + cy * 17 + ca * cy) % 256]
            ground = m.colors[3]
            col = np.where((idx >= 0)[:, None], m.colors[np.maximum(idx, 0)], ground)
            out[inb] = col[inb]
        elif m.kind == "dots":
            f = 6.0 + float(np.abs(m.freq[2, 0]))
            q = p * f + m.phase[:3]
            r = np.linalg.norm(q - np.round(q), axis=1)
            k = r < 0.3
            out[k] = out[k] * (1 - m.strength) + m.colors[2] * m.strength
    if m.dark != 1.0:
        out *= np.float32(m.dark)
    return out
