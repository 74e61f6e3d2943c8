"""Backgrounds for the synthetic generator: more table / floor / wall textures and flat clutter.

Texture kinds beyond :func:`demopose.synth.scene.procedural_texture`'s ``wood``/``noise``/``checker``:

* ``carpet``: fine high-frequency fibres over a low-frequency mottle, two close colours (the REAL275
  scenes are shot on carpet and tables);
* ``cloth``: a woven pattern (crossed sinusoids) with optional plaid stripes;
* ``paper``: near-white with faint fibre noise;
* ``paint``: a light, low-saturation wall colour with subtle unevenness;
* ``tiles``: square tiles with grout lines.

Clutter (:func:`clutter_surfaces`): flat boxes that are *background* (instance id 0, not in the
ground truth) lying on the table or standing on it: ``board`` (printed fiducial-marker boards as in the
REAL275 scenes: black blocks on white card with a cardboard rim), ``book`` (coloured cover with title
blocks), ``screen`` (a dark display with a bezel, e.g. a tablet or monitor) and ``paper`` (a sheet with
text lines). Boards and screens are exactly what a detector trained without them mistakes for objects.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable

import numpy as np

from demopose.synth.scene import TEXTURE_BANK, Surface, _periodic_noise, procedural_texture

__all__ = ["BACKGROUND_KINDS", "CLUTTER_KINDS", "background_texture", "clutter_surfaces"]

BACKGROUND_KINDS: tuple[str, ...] = ("wood", "noise", "checker", "carpet", "cloth", "paper", "paint", "tiles")
CLUTTER_KINDS: tuple[str, ...] = ("board", "book", "screen", "paper")


def background_texture(kind: str, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """A tileable texture ``(size, size, 3)`` uint8 RGB of any of :data:`BACKGROUND_KINDS`, tinted per scene."""
    if kind in ("wood", "noise", "checker"):
        return procedural_texture(kind, rng, size)
    k = int(rng.integers(TEXTURE_BANK))
    tint = rng.uniform(0.88, 1.12, 3)
    return np.clip(_bg_texture(kind, k, size) * tint + 0.5, 0, 255).astype(np.uint8)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


@functools.lru_cache(maxsize=5 * TEXTURE_BANK)
def _bg_texture(kind: str, k: int, size: int) -> np.ndarray:
    rng = np.random.default_rng([zlib.crc32(kind.encode()), k, size, 2])
    if kind == "carpet":
        fine = rng.random((size, size))
        mottle = _periodic_noise(rng, size, 2.5)
        c0 = _hsv(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.15, 0.55))
        c1 = c0 * rng.uniform(0.5, 0.9) + _hsv(rng.random(), 0.3, 0.3) * 0.2
        t = (0.6 * fine + 0.4 * mottle)[..., None]
        img = c0 + (c1 - c0) * t
    elif kind == "cloth":
        y, x = np.mgrid[0:size, 0:size] / size
        n = int(rng.choice([32, 64, 128]))
        weave = 0.5 + 0.25 * (np.sin(2 * np.pi * n * x) * np.sign(np.sin(2 * np.pi * n * y)))
        c0 = _hsv(rng.random(), rng.uniform(0.1, 0.8), rng.uniform(0.3, 0.9))
        img = c0 * (0.8 + 0.4 * weave[..., None])
        if rng.random() < 0.5:  # plaid
            m = int(rng.choice([2, 4, 8]))
            c1 = _hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.2, 0.9))
            band = ((np.floor(x * m * 2) % 2 == 0) | (np.floor(y * m * 2) % 4 == 0))[..., None]
            img = np.where(band, 0.6 * img + 0.4 * c1, img)
    elif kind == "paper":
        v = rng.uniform(0.8, 0.97)
        img = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.12), v) * (
            0.96 + 0.04 * _periodic_noise(rng, size, 1.0)[..., None])
    elif kind == "paint":
        img = _hsv(rng.random(), rng.uniform(0.0, 0.2), rng.uniform(0.55, 0.95)) * (
            0.93 + 0.07 * _periodic_noise(rng, size, 2.0)[..., None])
    elif kind == "tiles":
        cells = int(rng.choice([2, 4]))
        i = (np.arange(size) * cells * 16 // size) % 16
        grout = ((i[:, None] == 0) | (i[None, :] == 0))[..., None]
        c0 = _hsv(rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.5, 0.95))
        img = np.where(grout, c0 * 0.6, c0 * (0.92 + 0.08 * _periodic_noise(rng, size, 2.0)[..., None]))
    else:
        raise ValueError(f"background texture: expected one of {BACKGROUND_KINDS}, got {kind!r}")
    out = np.clip(img * 255.0, 0, 255).astype(np.float32)
    out.setflags(write=False)
    return out


# ------------------------------------------------------------------------------------------------ clutter


@functools.lru_cache(maxsize=4 * TEXTURE_BANK)
def _print_texture(kind: str, k: int, size: int = 128) -> np.ndarray:
    """The printed face of a clutter item, ``(size, size, 3)`` uint8; its corner pixel is the rim colour."""
    rng = np.random.default_rng([zlib.crc32(kind.encode()), k, 3])
    img = np.zeros((size, size, 3))
    rim = max(size // 24, 2)
    if kind == "board":
        img[:] = _hsv(0.08, rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.75))  # cardboard
        img[rim:-rim, rim:-rim] = rng.uniform(0.85, 1.0)
        n = int(rng.choice([1, 2]))
        cell = (size - 4 * rim) // n
        for a in range(n):
            for b in range(n):
                y0, x0 = 2 * rim + a * cell, 2 * rim + b * cell
                m = max(cell // 10, 1)
                bits = rng.random((6, 6)) < 0.5
                bits[0, :] = bits[-1, :] = bits[:, 0] = bits[:, -1] = True
                blk = np.kron(bits, np.ones(((cell - 2 * m) // 6, (cell - 2 * m) // 6)))
                img[y0 + m:y0 + m + blk.shape[0], x0 + m:x0 + m + blk.shape[1]][blk > 0] = 0.03
    elif kind == "book":
        img[:] = _hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.2, 0.9))
        for _ in range(int(rng.integers(2, 6))):
            y0, x0 = int(rng.integers(rim, size - 20)), int(rng.integers(rim, size // 2))
            img[y0:y0 + int(rng.integers(4, 16)), x0:x0 + int(rng.integers(20, size - x0 - rim))] = \
                _hsv(rng.random(), rng.uniform(0.0, 1.0), rng.uniform(0.0, 1.0))
    elif kind == "screen":
        img[:] = _hsv(0, 0, rng.uniform(0.02, 0.15))
        inner = img[2 * rim:-2 * rim, 2 * rim:-2 * rim]
        inner[:] = _hsv(rng.uniform(0.5, 0.7), rng.uniform(0.0, 0.5), rng.uniform(0.03, 0.3))
        if rng.random() < 0.5:  # something on the display
            y, x = np.mgrid[0:inner.shape[0], 0:inner.shape[1]] / inner.shape[0]
            inner += 0.3 * _hsv(rng.random(), 0.6, 0.8) * (0.5 + 0.5 * np.sin(6 * x + 3 * y))[..., None]
    elif kind == "paper":
        img[:] = rng.uniform(0.85, 0.98)
        for row in range(3 * rim, size - 3 * rim, max(size // 20, 3)):
            length = int(rng.integers(size // 3, size - 6 * rim))
            img[row:row + 2, 3 * rim:3 * rim + length] = rng.uniform(0.05, 0.3)
    else:
        raise ValueError(f"clutter: expected one of {CLUTTER_KINDS}, got {kind!r}")
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


_BOX_FACES = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5],
                       [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]], np.int32)


def _flat_box(size: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A box ``x in [-sx/2, sx/2], y in [0, sy], z in [-sz/2, sz/2]`` with its top face mapped to the whole
    texture and every other face to the rim colour. Returns ``(V (V, 3), F (F, 3), uv (V, 2))``."""
    sx, sy, sz = size
    bottom = np.array([[-sx / 2, 0, -sz / 2], [sx / 2, 0, -sz / 2], [sx / 2, 0, sz / 2], [-sx / 2, 0, sz / 2]])
    top = bottom + [0, sy, 0]
    eps = 1e-3  # the uv of the top corners sits just inside the texture
    V = np.concatenate([bottom, top, top])
    uv = np.concatenate([np.full((8, 2), eps), [[eps, eps], [1 - eps, eps], [1 - eps, 1 - eps], [eps, 1 - eps]]])
    F = np.concatenate([_BOX_FACES[:2], _BOX_FACES[4:]])  # bottom faces, then sides (rim uv)
    top_f = np.array([[8, 10, 9], [8, 11, 10]], np.int32)  # the top, on the uv-mapped copy
    return V, np.concatenate([F, top_f]).astype(np.int32), uv


def clutter_surfaces(rng: np.random.Generator, n: int, placed: list[tuple[np.ndarray, float]],
                     table_half: tuple[float, float], to_cam: Callable[[np.ndarray], np.ndarray],
                     standing: float = 0.3, kinds: tuple[str, ...] = CLUTTER_KINDS) -> list[Surface]:
    """Up to ``n`` flat clutter items on the table (world: y up, table top y = 0), as background surfaces.

    Args:
        rng: the frame's extra-randomisation generator. n: items to try to place.
        placed: ``[(xz centre (2,), radius)]`` footprints already on the table (objects; extended in place
            for lying items, so they do not overlap objects or each other).
        table_half: half extents of the placement area (m). to_cam: world -> camera points ``(N, 3)``.
        standing: probability that an item stands upright (leaning back 0-20°) instead of lying flat;
            standing items may hide objects behind them (occlusion).
        kinds: the clutter kinds to draw from.

    Returns:
        the surfaces (camera frame), named ``clutter_<kind>``.
    """
    out = []
    hx, hz = table_half
    for _ in range(int(n)):
        kind = str(kinds[int(rng.integers(len(kinds)))])
        k = int(rng.integers(TEXTURE_BANK))
        w = float(rng.uniform(0.12, 0.32))
        d = w * float(rng.uniform(0.6, 1.4))
        th = float(rng.uniform(0.002, 0.01)) if kind in ("board", "paper") else float(rng.uniform(0.006, 0.03))
        up = rng.random() < standing
        yaw = rng.uniform(0, 2 * math.pi)
        V, F, uv = _flat_box((w, th, d))
        if up:  # stand it on an edge: rotate about x by 90° minus a lean
            a = math.radians(90 - rng.uniform(0, 20))
            c, s = math.cos(a), math.sin(a)
            V = V @ np.array([[1, 0, 0], [0, c, s], [0, -s, c]]).T
            V[:, 1] -= V[:, 1].min()
        c_, s_ = math.cos(yaw), math.sin(yaw)
        V = V @ np.array([[c_, 0, s_], [0, 1, 0], [-s_, 0, c_]]).T
        radius = 0.5 * math.hypot(w, d)
        for _try in range(20):
            c = np.array([rng.uniform(-hx - 0.1, hx + 0.1), rng.uniform(-hz - 0.1, hz + 0.1)])
            if all(np.linalg.norm(c - pc) > radius + pr for pc, pr in placed):
                break
        else:
            continue
        if not up:
            placed.append((c, radius))
        Vw = V + np.array([c[0], 0.0005, c[1]])  # just above the table top (no z-fighting)
        out.append(Surface(f"clutter_{kind}", to_cam(Vw), F, uv, np.asarray(_print_texture(kind, k))))
    return out
