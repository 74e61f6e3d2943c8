"""Procedural builders for the six NOCS categories, in the NOCS canonical frame (y up).

Each ``build_<category>(rng, mean_size, shapes=None, info=None)`` draws part proportions around the
category's REAL275 mean size (``mean_size = (x, y, z)`` metres, :data:`demopose.categories.NOCS_REAL`) and
returns ``(mesh, face_colors)``: a closed mesh in metres (not yet centred; :func:`demopose.synth.meshes.make_object`
centres it on its tight box and, in version 3, scales it to its drawn size) and ``(F, 3)`` uint8 RGB albedo per
face. ``shapes=None`` draws generator versions 1-2's shapes (bit for bit); a
:class:`~demopose.synth.settings.ShapeVariety` draws version 3's (proportions, lid angles, handle kinds,
lenses, profiles), and the drawn parameters are written into ``info`` when a dict is given (``"kind"``,
``"lid_angle"``, ``"has_lens"``, ``"handle_faces"``, ...; tests read them).

Orientation, checked on the NOCS fixture meshes (tests/test_synth_meshes.py pins each one):

* bottle, bowl, can, mug: symmetry axis = +y, opening / neck / cap at +y.
* mug: handle on **+x** (``obj_models/real_test/mug_daniel_norm.obj``: the body spans x in
  [-0.053, 0.020] m, the handle reaches x = +0.053 m).
* camera: lens barrel along **+x** (``camera_canon_len_norm.obj``: body at -x, lens to +x), top plate +y.
* laptop: hinge axis along z at the **-x** side, base extends towards +x, lid rises towards +y and
  leans back towards -x, the screen faces +x (CAMERA ``val/03642806/*/model.obj`` after the NOCS
  z flip, notes/depth_and_eval.md §5.6; the flip does not change x or y). Version 3 also opens lids
  below 90 degrees: the lid then leans forward over the base; the base still defines the frame (hinge at
  -x, base towards +x, extents :func:`laptop_extents`).
"""

from __future__ import annotations

import numpy as np
import trimesh

from demopose.synth.primitives import (
    box,
    concat,
    cylinder,
    grid_box,
    hsv_color,
    insert_breaks,
    random_color,
    revolve,
    tube,
)

__all__ = [
    "build_bottle",
    "build_bowl",
    "build_camera",
    "build_can",
    "build_laptop",
    "build_mug",
    "laptop_extents",
    "BUILDERS",
]

_SECTIONS = 48


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _ease(n: int) -> np.ndarray:
    """``(n,)`` cosine ease 0 -> 1."""
    return (1 - np.cos(np.linspace(0, np.pi, n))) / 2


def _angle(c: np.ndarray) -> np.ndarray:
    """Azimuth about y of face centroids ``(F, 3)``, in [0, 2 pi)."""
    return np.mod(np.arctan2(c[:, 2], c[:, 0]), 2 * np.pi)


class _Label:
    """A decoration band ``y0 < y < y1`` around the y axis: plain, stripes, a patch or two-tone.

    Its edges lie on ring heights (:meth:`breaks`, fed to :func:`insert_breaks`) and on sector
    boundaries of the lathe, so they come out straight.
    """

    def __init__(self, rng: np.random.Generator, y0: float, y1: float, style: str | None = None):
        self.y0, self.y1 = float(y0), float(y1)
        styles = ("plain", "stripes", "patch", "two_tone")
        pick = str(rng.choice(styles))
        self.style = style or pick
        self.c1 = random_color(rng)
        self.c2 = random_color(rng, s=(0.0, 0.6), v=(0.8, 1.0))
        self.n = int(rng.integers(2, 6))
        self.a0 = 2 * np.pi * int(rng.integers(_SECTIONS)) / _SECTIONS
        self.da = 2 * np.pi * int(rng.integers(_SECTIONS // 8, _SECTIONS // 3)) / _SECTIONS
        self.half = _u(rng, 0.2, 0.35)  # patch half-height, fraction of the band

    def breaks(self) -> list[float]:
        if self.style == "stripes":
            return list(np.linspace(self.y0, self.y1, 2 * self.n + 1))
        ym, h = (self.y0 + self.y1) / 2, self.y1 - self.y0
        if self.style == "patch":
            return [self.y0, self.y1, ym - self.half * h, ym + self.half * h]
        return [self.y0, self.y1]

    def paint(self, centroids: np.ndarray, colors: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Paint faces (centroids ``(F, 3)``) inside the band (and ``mask``, when given); returns ``colors``."""
        y = centroids[:, 1]
        band = (y > self.y0) & (y < self.y1)
        if mask is not None:
            band &= mask
        colors[band] = self.c1
        if self.style == "stripes":
            k = np.floor((y - self.y0) / (self.y1 - self.y0) * (2 * self.n)).astype(int) % 2
            colors[band & (k == 1)] = self.c2
        elif self.style == "patch":
            da = np.mod(_angle(centroids) - self.a0, 2 * np.pi)
            ym, h = (self.y0 + self.y1) / 2, self.y1 - self.y0
            colors[band & (da < self.da) & (np.abs(y - ym) < self.half * h)] = self.c2
        elif self.style == "two_tone":
            colors[band & (_angle(centroids) < np.pi)] = self.c2
        return colors


# ---------------------------------------------------------------------------------------------- bottle
def build_bottle(rng: np.random.Generator, mean_size, shapes=None, info: dict | None = None,
                 ) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Revolved bottle: body, shoulder, neck, cap; label band and a cap of another colour.

    Version 3 (``shapes``): height / diameter from ``shapes.aspect("bottle")`` and a shoulder kind from
    ``shapes.bottle_shoulders``: ``round``/``conical`` (cosine or linear blend to the neck), ``flat`` (a short
    shoulder and a long neck), ``straight`` (a wide neck, a step to the cap: shampoo, sauce).
    """
    t = _ease(10)
    if shapes is None:
        H = mean_size[1] * _u(rng, 0.78, 1.22)
        R = (mean_size[0] + mean_size[2]) / 4 * _u(rng, 0.78, 1.22)
        rn = max(R * _u(rng, 0.28, 0.45), 0.009)
        rc = rn * _u(rng, 1.05, 1.25)
        hc = H * _u(rng, 0.06, 0.11)
        ln = H * _u(rng, 0.05, 0.15)
        ls = H * _u(rng, 0.10, 0.25)
        bev = R * _u(rng, 0.05, 0.15)
        # shoulder: cosine (round) or linear (conical) blend from R to rn
        shape = t if rng.random() < 0.7 else np.linspace(0, 1, 10)
    else:
        R = (mean_size[0] + mean_size[2]) / 4
        H = 2 * R * _u(rng, *shapes.aspect("bottle"))
        kind = str(rng.choice(list(shapes.bottle_shoulders)))
        (rn0, rn1), (ln0, ln1), (ls0, ls1) = {
            "round": ((0.28, 0.45), (0.05, 0.15), (0.10, 0.25)),
            "conical": ((0.28, 0.45), (0.05, 0.15), (0.10, 0.25)),
            "flat": ((0.22, 0.35), (0.15, 0.28), (0.03, 0.08)),
            "straight": ((0.55, 0.8), (0.02, 0.05), (0.015, 0.04)),
        }[kind]
        rn = max(R * _u(rng, rn0, rn1), 0.2 * R)
        rc = min(rn * _u(rng, 1.05, 1.25), 0.97 * R)  # the cap never widens the box
        hc = H * _u(rng, 0.05, 0.12)
        ln = H * _u(rng, ln0, ln1)
        ls = H * _u(rng, ls0, ls1)
        bev = R * _u(rng, 0.05, 0.15)
        shape = np.linspace(0, 1, 10) if kind in ("conical", "straight") else t
        if info is not None:
            info.update(kind=kind, height=H, diameter=2 * R, neck_radius=rn)
    hb = H - hc - ln - ls
    shoulder = np.stack([R + (rn - R) * shape, hb + ls * np.linspace(0, 1, 10)], 1)
    a = np.linspace(-np.pi / 2, 0, 5)[1:-1]
    bottom_bevel = np.stack([R - bev + bev * np.cos(a), bev + bev * np.sin(a)], 1)
    ytop = hb + ls + ln
    cbev = min(rc * 0.15, hc * 0.3)
    profile = np.concatenate([
        [[0.0, 0.004 * R / 0.044], [R - bev, 0.0]], bottom_bevel, [[R, bev]],
        shoulder,
        [[rn, ytop], [rc, ytop], [rc, H - cbev], [rc - cbev, H], [0.0, H]],
    ])
    label = _Label(rng, hb * _u(rng, 0.15, 0.35), hb * _u(rng, 0.7, 0.95))
    mesh = revolve(insert_breaks(profile, label.breaks()), _SECTIONS)
    c = mesh.triangles_center
    glass = rng.random() < 0.5
    body = hsv_color(rng.choice([0.3, 0.08, 0.55, 0.6]), _u(rng, 0.3, 0.9), _u(rng, 0.25, 0.6)) if glass \
        else random_color(rng)
    colors = np.tile(body, (len(c), 1))
    colors = label.paint(c, colors, np.hypot(c[:, 0], c[:, 2]) > R * 0.9)
    colors[c[:, 1] > ytop - 1e-6] = random_color(rng)
    return mesh, colors


# ------------------------------------------------------------------------------------------------ bowl
def build_bowl(rng: np.random.Generator, mean_size, shapes=None, info: dict | None = None,
               ) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Revolved open bowl with wall thickness and a foot ring (a closed thick solid).

    Version 3 (``shapes``): height / diameter from ``shapes.aspect("bowl")`` (deep or shallow) and the
    wall curve's exponent from ``shapes.bowl_flare`` (steep or flared walls).
    """
    if shapes is None:
        R = (mean_size[0] + mean_size[2]) / 4 * _u(rng, 0.78, 1.22)
        H = mean_size[1] * _u(rng, 0.78, 1.22)
        w = _u(rng, 0.003, 0.007)
        rf = R * _u(rng, 0.35, 0.55)
        hf = _u(rng, 0.004, 0.012)
        a = _u(rng, 0.7, 1.4)
    else:
        R = (mean_size[0] + mean_size[2]) / 4
        H = 2 * R * _u(rng, *shapes.aspect("bowl"))
        w = _u(rng, 0.003, 0.007)
        rf = R * _u(rng, 0.3, 0.6)
        hf = min(_u(rng, 0.004, 0.012), 0.15 * H)
        a = _u(rng, *shapes.bowl_flare)
        if info is not None:
            info.update(height=H, diameter=2 * R, flare=a, wall=w)
    t = np.linspace(0, 1, 12)
    outer = np.stack([rf + (R - rf) * np.sin(np.pi / 2 * t) ** a, hf + (H - hf) * (1 - np.cos(np.pi / 2 * t))], 1)
    d = np.gradient(outer, axis=0)
    nrm = np.stack([d[:, 1], -d[:, 0]], 1)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    inner = outer - w * nrm
    inner[0] = [rf - w * 0.5, hf + w]
    label = _Label(rng, H * _u(rng, 0.55, 0.75), H * 0.95)
    outside = insert_breaks(np.concatenate([[[rf * 0.82, hf], [rf * 0.86, 0.0], [rf, 0.0]], outer]), label.breaks())
    profile = np.concatenate([[[0.0, hf]], outside, [[R - w / 2, H + w * 0.25]], inner[::-1], [[0.0, hf + w]]])
    mesh = revolve(profile, _SECTIONS)
    c = mesh.triangles_center
    out_col = random_color(rng, s=(0.0, 0.8))
    in_col = out_col if rng.random() < 0.5 else hsv_color(0, 0, _u(rng, 0.85, 0.98))
    # faces on the inside: their normal points towards the axis or up from the inner bottom
    n = mesh.face_normals
    radial = (c[:, 0] * n[:, 0] + c[:, 2] * n[:, 2]) / np.maximum(np.hypot(c[:, 0], c[:, 2]), 1e-9)
    inside = (radial < -0.2) | ((n[:, 1] > 0.5) & (c[:, 1] > hf + w / 2))
    colors = np.where(inside[:, None], in_col, out_col).astype(np.uint8)
    if rng.random() < 0.6:  # rim stripe or pattern band on the outside
        colors = label.paint(c, colors, ~inside)
    return mesh, colors


# ------------------------------------------------------------------------------------------------- can
def build_can(rng: np.random.Generator, mean_size, shapes=None, info: dict | None = None,
              ) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Revolved can: domed bottom with chime, straight (or slightly tapered) body, necked top, rim, lid.

    Version 3 (``shapes``): height / diameter from ``shapes.aspect("can")`` (slim drink cans to squat food
    cans).
    """
    if shapes is None:
        H = mean_size[1] * _u(rng, 0.75, 1.25)
        R = (mean_size[0] + mean_size[2]) / 4 * _u(rng, 0.78, 1.22)
    else:
        R = (mean_size[0] + mean_size[2]) / 4
        H = 2 * R * _u(rng, *shapes.aspect("can"))
        if info is not None:
            info.update(height=H, diameter=2 * R)
    taper = _u(rng, 0.9, 1.0) if rng.random() < 0.3 else 1.0
    rn = R * _u(rng, 0.82, 0.94)  # neck radius at the top
    hn = H * _u(rng, 0.03, 0.08)  # neck height
    ch = min(0.006, H * 0.05)
    lip = 0.0015
    rec = _u(rng, 0.002, 0.005)  # lid recess
    t = _ease(6)[1:]
    rb = R * taper  # bottom radius (taper: narrower at the bottom)
    body = np.stack([rb + (R - rb) * np.linspace(0, 1, 6), np.linspace(ch, H - hn, 6)], 1)
    neck = np.stack([R + (rn - R) * t, H - hn + (hn - lip) * t], 1)
    profile = np.concatenate([
        [[0.0, ch * 1.2], [rb * 0.7, ch * 0.4], [rb * 0.8, 0.0], [rb * 0.93, 0.0]],
        body,
        neck,
        [[rn + lip * 0.5, H - lip * 0.5], [rn, H], [rn - lip * 1.5, H], [rn - lip * 1.8, H - rec],
         [0.0, H - rec]],
    ])
    label = _Label(rng, ch + 0.002, H - hn)
    mesh = revolve(insert_breaks(profile, label.breaks()), _SECTIONS)
    c = mesh.triangles_center
    metal = hsv_color(0, 0, _u(rng, 0.6, 0.85))
    colors = np.tile(metal, (len(c), 1))
    colors = label.paint(c, colors, np.hypot(c[:, 0], c[:, 2]) > rb * 0.9)
    return mesh, colors


# ------------------------------------------------------------------------------------------------- mug
def build_mug(rng: np.random.Generator, mean_size, shapes=None, info: dict | None = None,
              ) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Revolved mug body (wall thickness, open top) with a tube handle on +x.

    Version 3 (``shapes``): height / body diameter from ``shapes.aspect("mug")``, and a handle of a kind in
    ``shapes.handle_kinds`` (``round`` C, ``square`` D, small ``ear`` high on the body) reaching
    ``shapes.handle_reach`` body diameters out, with a tube radius of ``shapes.handle_thickness`` heights.
    ``info["handle_faces"]`` is the number of handle faces (the last ones of the mesh).
    """
    if shapes is None:
        H = mean_size[1] * _u(rng, 0.8, 1.3)
        R = mean_size[2] / 2 * _u(rng, 0.8, 1.2)
    else:
        R = mean_size[2] / 2
        H = 2 * R * _u(rng, *shapes.aspect("mug"))
    Rb = R * _u(rng, 0.8, 1.0)  # bottom radius
    w = _u(rng, 0.003, 0.006)
    base = _u(rng, 0.004, 0.010)
    bev = min(0.004, Rb * 0.1)
    ys = np.linspace(bev, H, 8)
    bulge = _u(rng, 0.0, 0.06) * R
    rs = Rb + (R - Rb) * (ys / H) + bulge * np.sin(np.pi * ys / H)
    outer = np.stack([rs, ys], 1)
    inner = np.stack([rs - w, ys], 1)[::-1]
    inner[-1, 1] = base
    profile = np.concatenate([
        [[0.0, 0.002], [Rb - bev, 0.0]],
        outer,
        [[R - w / 2, H + w * 0.3]],
        inner[:-1],
        [[rs[0] - w, base], [0.0, base]],
    ])
    label = _Label(rng, H * _u(rng, 0.1, 0.3), H * _u(rng, 0.6, 0.9))
    body = revolve(insert_breaks(profile, label.breaks()), _SECTIONS)
    # handle: half-ellipse in the x-y plane, ends sunk into the wall
    if shapes is None:
        rt = _u(rng, 0.004, 0.007)
        reach = (mean_size[0] - mean_size[2]) * _u(rng, 0.8, 1.2) - rt
        reach = max(reach, 0.015)
        b = H * _u(rng, 0.25, 0.36)
        yc = H * _u(rng, 0.45, 0.55)
        yc = min(yc, H - b - rt - 0.004)
    else:
        kind = str(rng.choice(list(shapes.handle_kinds)))
        rt = H * _u(rng, *shapes.handle_thickness)
        reach = max(2 * R * _u(rng, *shapes.handle_reach) - rt, 2.2 * rt)  # tube centre line, a hole inside
        if kind == "ear":
            b, yc = H * _u(rng, 0.12, 0.2), H * _u(rng, 0.58, 0.7)
        else:
            b, yc = H * _u(rng, 0.25, 0.38), H * _u(rng, 0.45, 0.55)
        b = min(b, yc - rt - 0.1 * H, H - yc - rt - 0.05 * H)  # inside the body height
    phi = np.linspace(np.pi / 2, -np.pi / 2, 20)

    def radius_at(y):
        return Rb + (R - Rb) * (y / H) + bulge * np.sin(np.pi * y / H)

    xw = np.array([radius_at(yc + b * np.sin(p)) for p in phi])
    if shapes is None:
        square = _u(rng, 0.6, 1.0)  # < 1: squarer handle
    else:
        square = _u(rng, 0.3, 0.5) if kind == "square" else _u(rng, 0.75, 1.0)
        if info is not None:
            info.update(kind=kind, height=H, diameter=2 * R, reach=reach + rt, thickness=rt)
    cs = np.sign(np.cos(phi)) * np.abs(np.cos(phi)) ** square
    sn = np.sign(np.sin(phi)) * np.abs(np.sin(phi)) ** square
    path = np.stack([xw + reach * cs, yc + b * sn, np.zeros_like(phi)], 1)
    sink = np.array([[-0.5 * w, 0, 0]])  # the end caps stay inside the wall
    path = np.concatenate([path[:1] + sink, path, path[-1:] + sink])
    handle = tube(path, rt, 12)
    col = random_color(rng, s=(0.0, 0.9))
    inside_col = col if rng.random() < 0.5 else hsv_color(0, 0, _u(rng, 0.85, 0.98))
    c = body.triangles_center
    r = np.hypot(c[:, 0], c[:, 2])
    n = body.face_normals
    radial = (c[:, 0] * n[:, 0] + c[:, 2] * n[:, 2]) / np.maximum(r, 1e-9)
    inside = (radial < -0.2) | ((n[:, 1] > 0.5) & (c[:, 1] < H - w))
    bcol = np.where(inside[:, None], inside_col, col).astype(np.uint8)
    if rng.random() < 0.6:
        bcol = label.paint(c, bcol, ~inside)
    if info is not None:
        info["handle_faces"] = len(handle.faces)
    return concat([(body, bcol), (handle, col)])


# ---------------------------------------------------------------------------------------------- laptop
def laptop_extents(depth: float, lid: float, base_t: float, lid_t: float, angle_deg: float) -> np.ndarray:
    """``(3,)`` x, y extents and the width factor of a :func:`build_laptop` laptop, from its parts.

    Args:
        depth: base depth D along x. lid: lid length L (<= D). base_t, lid_t: base and lid thickness
            (lid_t <= base_t, so the lid's back edge stays above the base's bottom when opened past 90°).
        angle_deg: lid opening (degrees between base and lid).

    Returns:
        ``(x, y, 1)``: x = D - min(L cos θ, 0) + t_lid sin θ, y = t_base + L sin θ + max(t_lid cos θ, 0); the
        z extent is the width W (the last entry is a factor 1 for it).
    """
    th = np.deg2rad(angle_deg)
    return np.array([depth - min(lid * np.cos(th), 0.0) + lid_t * np.sin(th),
                     base_t + lid * np.sin(th) + max(lid_t * np.cos(th), 0.0), 1.0])


def build_laptop(rng: np.random.Generator, mean_size, shapes=None, info: dict | None = None,
                 ) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Laptop: base and lid boxes, hinge along z at -x, lid opened by a random angle (100-145 deg).

    The base carries a keyboard (a grid of dark keys) and a touchpad, the lid a screen on its inner
    face and a logo on its back; the box faces are gridded along those edges. Version 3 (``shapes``): the
    lid opens by ``shapes.lid_angle`` degrees and the base depth / width is ``shapes.aspect("laptop")``;
    the extents are :func:`laptop_extents` of the parameters written into ``info``.
    """
    if shapes is None:
        W = mean_size[2] * _u(rng, 0.78, 1.2)  # width along z
        D = W * _u(rng, 0.62, 0.78)  # base depth along x
        tb = _u(rng, 0.008, 0.02)
        tl = _u(rng, 0.004, 0.009)
        L = D * _u(rng, 0.92, 1.0)
        theta = np.deg2rad(_u(rng, 100.0, 145.0))
    else:
        W = mean_size[2]
        D = W * _u(rng, *shapes.aspect("laptop"))
        tb = _u(rng, 0.008, 0.02)
        tl = min(_u(rng, 0.004, 0.009), tb)
        L = D * _u(rng, 0.92, 1.0)
        angle = _u(rng, *shapes.lid_angle)
        theta = np.deg2rad(angle)
        if info is not None:
            info.update(width=W, depth=D, base_t=tb, lid_t=tl, lid=L, lid_angle=angle)
    shell = hsv_color(rng.random(), _u(rng, 0.0, 0.25), _u(rng, 0.15, 0.85))
    dark = hsv_color(0, 0, _u(rng, 0.05, 0.2))
    rows, cols = int(rng.integers(4, 7)), int(rng.integers(10, 16))
    kx0, kx1, kz = 0.06 * D, _u(rng, 0.5, 0.58) * D, _u(rng, 0.38, 0.45) * W
    px0, px1, pz = 0.64 * D, 0.92 * D, _u(rng, 0.12, 0.2) * W
    kxs = np.linspace(kx0, kx1, 2 * rows + 1)  # key / gap boundaries
    kzs = np.linspace(-kz, kz, 2 * cols + 1)
    base = grid_box(np.unique([0.0, *kxs, px0, px1, D]), [0.0, tb], np.unique([-W / 2, *kzs, -pz, pz, W / 2]))
    c = base.triangles_center
    top = base.face_normals[:, 1] > 0.5
    bcol = np.tile(shell, (len(c), 1))
    in_keys = top & (c[:, 0] > kx0) & (c[:, 0] < kx1) & (np.abs(c[:, 2]) < kz)
    ki = np.searchsorted(kxs, c[:, 0]) % 2 == 0  # odd cells are keys, even cells the gaps between them
    kj = np.searchsorted(kzs, c[:, 2]) % 2 == 0
    bcol[in_keys] = (0.6 * shell + 0.4 * dark).astype(np.uint8)
    bcol[in_keys & ki & kj] = dark
    bcol[top & (c[:, 0] > px0) & (c[:, 0] < px1) & (np.abs(c[:, 2]) < pz)] = (0.75 * shell + 0.25 * dark).astype(
        np.uint8)
    # lid built closed on the base (x in [0, L], y in [0, tl]), then rotated about the hinge (z axis)
    sx0, sx1, sz = 0.05 * L, 0.95 * L, _u(rng, 0.44, 0.47) * W
    lg = _u(rng, 0.05, 0.1) * W
    lid = grid_box(np.unique([0.0, sx0, L / 2 - lg, L / 2 + lg, sx1, L]), [0.0, tl],
                   np.unique([-W / 2, -sz, -lg, lg, sz, W / 2]))
    c = lid.triangles_center
    n = lid.face_normals
    lcol = np.tile(shell, (len(c), 1))
    screen = (n[:, 1] < -0.5) & (c[:, 0] > sx0) & (c[:, 0] < sx1) & (np.abs(c[:, 2]) < sz)
    lcol[screen] = hsv_color(_u(rng, 0.5, 0.7), _u(rng, 0.2, 0.6), _u(rng, 0.05, 0.35))
    logo = (n[:, 1] > 0.5) & (np.abs(c[:, 0] - L / 2) < lg) & (np.abs(c[:, 2]) < lg)
    lcol[logo] = random_color(rng, v=(0.6, 1.0))
    rot = trimesh.transformations.rotation_matrix(theta, [0, 0, 1])
    lid.apply_transform(rot)
    lid.apply_translation([0.0, tb, 0.0])
    return concat([(base, bcol), (lid, lcol)])


# ---------------------------------------------------------------------------------------------- camera
def build_camera(rng: np.random.Generator, mean_size, shapes=None, info: dict | None = None,
                 ) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Camera: body box, lens barrel along +x (rings and front glass), grip on +z, flash, shutter button.

    Two styles: a DSLR-like body (viewfinder hump above the lens, deep grip, flash on top) or a compact
    (thin body, small lens, no hump, flash on the front). Version 3 (``shapes``): height / width from
    ``shapes.aspect("camera")``; a share ``shapes.lens_share`` has a lens barrel ``shapes.lens_length``
    body widths long and ``shapes.lens_diameter`` body heights wide, the others only a lens mount with a
    body cap (REAL275's ``camera_canon_wo_len``); either way the front is +x.
    """
    compact = rng.random() < 0.35
    has_lens = True
    if shapes is None:
        Wz = mean_size[2] * _u(rng, 0.8, 1.15)
        Hb = mean_size[1] * _u(rng, 0.85, 1.15) * (1.0 if compact else 0.82)  # body height without the hump
        Dx = mean_size[0] * (_u(rng, 0.3, 0.45) if compact else _u(rng, 0.4, 0.6))
        rl = min(Hb, Wz) * (_u(rng, 0.2, 0.3) if compact else _u(rng, 0.25, 0.36))
        Ll = max(mean_size[0] * (_u(rng, 0.75, 1.15) if compact else _u(rng, 0.75, 1.25)) - Dx, 0.012)
    else:
        Wz = mean_size[2]
        hump = 0.0 if compact else _u(rng, 0.12, 0.22)  # viewfinder hump height / body height
        Hb = Wz * _u(rng, *shapes.aspect("camera")) / (1.0 + hump)
        Dx = Wz * (_u(rng, 0.2, 0.3) if compact else _u(rng, 0.35, 0.5))
        rl = Hb * _u(rng, *shapes.lens_diameter) / 2 * (0.75 if compact else 1.0)
        has_lens = bool(rng.random() < shapes.lens_share)
        Ll = Wz * _u(rng, *shapes.lens_length) if has_lens else Wz * _u(rng, 0.05, 0.09)  # barrel or mount
        if info is not None:
            info.update(compact=compact, has_lens=has_lens, lens_length=Ll if has_lens else 0.0,
                        lens_diameter=2 * rl, width=Wz, body_height=Hb, body_depth=Dx)
    zl = -Wz * _u(rng, 0.0, 0.12)
    yl = -Hb * _u(rng, 0.0, 0.08)
    black = hsv_color(0, 0, _u(rng, 0.05, 0.2))
    body_col = black if rng.random() < 0.6 else hsv_color(rng.random(), _u(rng, 0.0, 0.5), _u(rng, 0.5, 0.9))
    y_plate = Hb * _u(rng, 0.15, 0.3)
    body = grid_box(np.linspace(-Dx, 0.0, 4), np.unique([-Hb / 2, *np.linspace(-Hb / 2, Hb / 2, 5), y_plate, Hb / 2]),
                    np.linspace(-Wz / 2, Wz / 2, 7))
    c = body.triangles_center
    bcol = np.tile(body_col, (len(c), 1))
    if rng.random() < 0.5:  # two-tone: silver top plate
        bcol[c[:, 1] > y_plate] = hsv_color(0, 0, _u(rng, 0.6, 0.85))
    parts = [(body, bcol)]
    x0 = 0.0
    if has_lens:
        mount = cylinder(rl * 1.12, Ll * 0.2, "x", [x0 + Ll * 0.1, yl, zl], 32)
        barrel = cylinder(rl, Ll * 0.8, "x", [x0 + Ll * 0.6, yl, zl], 32)
        ring = cylinder(rl * 1.06, Ll * 0.25, "x", [x0 + Ll * _u(rng, 0.45, 0.75), yl, zl], 32)
        glass = cylinder(rl * 0.75, 0.002, "x", [x0 + Ll + 0.0005, yl, zl], 32)
        lens_col = hsv_color(0, 0, _u(rng, 0.05, 0.25)) if rng.random() < 0.8 else hsv_color(0, 0, 0.8)
        parts += [(mount, hsv_color(0, 0, 0.7)), (barrel, lens_col), (ring, hsv_color(0, 0, 0.12)),
                  (glass, hsv_color(_u(rng, 0.55, 0.75), 0.6, 0.25))]
    else:  # lens mount ring with a body cap
        mount = cylinder(rl * 1.12, Ll, "x", [x0 + Ll / 2, yl, zl], 32)
        cap = cylinder(rl * 0.95, 0.002, "x", [x0 + Ll + 0.001, yl, zl], 32)
        parts += [(mount, hsv_color(0, 0, 0.7)), (cap, hsv_color(0, 0, _u(rng, 0.05, 0.15)))]
    # grip on +z, protruding forward (+x)
    gw = Wz * (_u(rng, 0.1, 0.16) if compact else _u(rng, 0.18, 0.28))
    gd = min(Dx * (_u(rng, 0.1, 0.2) if compact else _u(rng, 0.3, 0.5)), Ll * (0.5 if has_lens else 0.9))
    parts.append((box([gd, Hb * 0.88, gw], [gd / 2, -Hb * 0.04, Wz / 2 - gw / 2], 1), black))
    fl = rl * _u(rng, 0.4, 0.7)
    white = hsv_color(0, 0, 0.92)
    if compact:  # flash window on the front, upper corner away from the grip
        parts.append((box([0.003, fl * 0.5, fl], [0.0015, Hb / 2 - fl * 0.4, -Wz / 2 + fl * 0.8], 0), white))
    else:  # viewfinder hump above the lens, flash on top on the other side
        hh = Hb * (_u(rng, 0.12, 0.22) if shapes is None else hump)
        parts.append((box([Dx * 0.85, hh, rl * 1.6], [-Dx / 2, Hb / 2 + hh / 2, zl], 1), body_col))
        parts.append((box([Dx * 0.3, fl * 0.5, fl], [-Dx * 0.2, Hb / 2 + fl * 0.25, -Wz / 2 + fl * 0.8], 0), white))
    parts.append((cylinder(gw * 0.18, 0.006, "y", [-gd * 0.2 - 0.002, Hb / 2 + 0.003, Wz / 2 - gw / 2], 16),
                  hsv_color(0, _u(rng, 0.0, 0.9), 0.7)))
    return concat(parts)


BUILDERS = {
    "bottle": build_bottle,
    "bowl": build_bowl,
    "camera": build_camera,
    "can": build_can,
    "laptop": build_laptop,
    "mug": build_mug,
}
"""Category name -> builder ``(rng, mean_size) -> (mesh, face_colors)``."""
