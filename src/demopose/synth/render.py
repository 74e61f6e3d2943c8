"""Renderers for synthetic scenes: colour, depth, instance ids, exact NOCS maps, normals.

Two interchangeable back ends implement ``render(scene, intrinsics) -> RenderOutput``:

* :class:`EmbreeRenderer` (default): one primary ray per pixel centre through Embree (``embreex``),
  direction ``((u - cx) / fx, (v - cy) / fy, 1)`` so the hit distance is the z depth; optional shadow
  rays toward the light; the fast path (frame rates: ``benchmarks/synth_fps.py``).
* :class:`TorchRenderer`: a vectorised z-buffer rasteriser in PyTorch (edge functions, perspective-
  correct barycentrics, depth test by ``scatter_reduce(amin)`` over packed ``(depth bits, face)`` keys).
  No shadows. Slower on CPU; it is the independent test oracle for the Embree path.

Both produce the same per-pixel hit record (geometry, triangle, barycentrics, depth); one shading
stage (:func:`shade`) turns it into the output maps, so their outputs differ only where the
geometry tests differ (pixel centres exactly on shared edges).

Convention: OpenCV camera at the origin, metres; pixel ``(u, v)`` centres at integer coordinates.
NOCS maps hold ``x_obj / ‖extents‖`` (the NOCS normalised space, in [-0.5, 0.5]), NaN off objects.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from demopose.geometry.camera import Intrinsics
from demopose.synth.scene import Scene

__all__ = ["EmbreeRenderer", "Hits", "RenderOutput", "Renderer", "TorchRenderer", "get_renderer", "shade"]


@dataclass
class RenderOutput:
    """Rendered maps of one frame (H, W = image size).

    Attributes:
        color: ``(H, W, 3)`` uint8 RGB, shaded. depth: ``(H, W)`` float32 metres, 0 where nothing is hit.
        instance: ``(H, W)`` int32, 0 background (table, floor, wall, nothing), 1..N instances.
        nocs: ``(H, W, 3)`` float32 NOCS coordinates of the instance surface, NaN elsewhere.
        normals: ``(H, W, 3)`` float32 unit surface normals (camera frame, facing the camera), 0 on misses.
        albedo: ``(H, W, 3)`` uint8 RGB surface colour before lighting.
        handle: ``(H, W)`` bool, pixels showing a mug-handle face.
        specular: ``(H, W)`` float32 in [0, 1], strength of the mirror reflection straight back to the
            camera (glossy materials facing it; what saturates a structured-light sensor), or None when
            no instance is glossy.
    """

    color: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    nocs: np.ndarray
    normals: np.ndarray
    albedo: np.ndarray
    handle: np.ndarray
    specular: np.ndarray | None = None


@dataclass
class Hits:
    """Per-pixel primary hits, flattened row-major ``(P = H·W,)``.

    ``geom`` int32 geometry index (instances first, then surfaces), -1 on a miss; ``prim`` int32
    triangle index within it; ``b1, b2`` float barycentric weights of the triangle's 2nd and 3rd
    vertex (Embree convention); ``depth`` float z depth in metres.
    """

    geom: np.ndarray
    prim: np.ndarray
    b1: np.ndarray
    b2: np.ndarray
    depth: np.ndarray


class Renderer(Protocol):
    """A renderer: ``render(scene, intrinsics) -> RenderOutput``."""

    def render(self, scene: Scene, intrinsics: Intrinsics) -> RenderOutput: ...


def _geometries(scene: Scene) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(V_cam (V, 3), F (F, 3) int32)]``: instances in id order, then surfaces."""
    out = [(inst.vertices @ inst.R.T + inst.t, inst.faces) for inst in scene.instances]
    out += [(s.vertices, s.faces) for s in scene.surfaces]
    return out


@functools.lru_cache(maxsize=8)
def _ray_dirs(K: Intrinsics) -> np.ndarray:
    """``(H·W, 3)`` float32 ray directions with z = 1 through the pixel centres (read-only, cached)."""
    v, u = np.mgrid[0:K.height, 0:K.width].astype(np.float32)
    d = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], -1)
    d = np.ascontiguousarray(d.reshape(-1, 3), dtype=np.float32)
    d.setflags(write=False)
    return d


@functools.lru_cache(maxsize=8)
def _block_anchors(K: Intrinsics) -> np.ndarray:
    """``(H·W,)`` flat index of the top-left pixel of each pixel's 2×2 block (cached)."""
    rows, cols = np.divmod(np.arange(K.height * K.width), K.width)
    a = (rows - rows % 2) * K.width + (cols - cols % 2)
    a.setflags(write=False)
    return a


def _face_normals(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)).astype(np.float32)


def shade(scene: Scene, intrinsics: Intrinsics, hits: Hits, lit: np.ndarray | None = None) -> RenderOutput:
    """Turn primary hits into the output maps (Lambert + ambient shading, textures, NOCS, normals).

    Args:
        scene: the scene the hits belong to. intrinsics: image size and rays.
        hits: the primary hits. lit: ``(P,)`` bool, False where the hit point is in shadow (None: all lit).
    """
    K = intrinsics
    H, W = K.height, K.width
    P = H * W
    geoms = _geometries(scene)
    n_inst = len(scene.instances)
    # dense per-pixel arrays (the background surfaces cover almost every pixel, so gathering the
    # hit pixels first would only add copies); misses keep zero normal/albedo -> black
    g = hits.geom
    instance = np.where((g >= 0) & (g < n_inst), g + 1, 0).astype(np.int32)
    depth = np.where(g >= 0, hits.depth, 0).astype(np.float32)
    nrm = np.zeros((P, 3), np.float32)
    alb = np.zeros((P, 3), np.float32)
    nocs = np.full((P, 3), np.nan, np.float32)
    handle = np.zeros(P, bool)
    glossy: list[tuple[np.ndarray, float, float]] = []  # (pixels, ks, shininess)
    for gi, (V, F) in enumerate(geoms):
        sel = np.flatnonzero(g == gi)
        if len(sel) == 0:
            continue
        p = hits.prim[sel]
        tri = F[p]
        nrm[sel] = _face_normals(V, F)[p]
        if gi < n_inst:
            # float64 barycentrics: the NOCS map must be exact to ~1e-7
            w1, w2 = hits.b1[sel, None].astype(np.float64), hits.b2[sel, None].astype(np.float64)
            w0 = 1.0 - w1 - w2
            inst = scene.instances[gi]
            Vn = inst.vertices / inst.scale
            nocs[sel] = w0 * Vn[tri[:, 0]] + w1 * Vn[tri[:, 1]] + w2 * Vn[tri[:, 2]]
            alb[sel] = inst.face_colors[p]
            handle[sel] = inst.handle_faces[p]
            m = inst.material
            if m is not None:
                from demopose.synth.materials import apply_material

                alb[sel] = np.clip(apply_material(alb[sel], nocs[sel], m), 0, 255)
                if m.specular > 0:
                    glossy.append((sel, m.specular, m.shininess))
        else:
            w1, w2 = hits.b1[sel, None], hits.b2[sel, None]
            w0 = 1.0 - w1 - w2
            srf = scene.surfaces[gi - n_inst]
            uv = srf.uv.astype(np.float32)
            uv = w0 * uv[tri[:, 0]] + w1 * uv[tri[:, 1]] + w2 * uv[tri[:, 2]]
            T = srf.texture
            tx = (uv[:, 0] * T.shape[1]).astype(np.int64) % T.shape[1]
            ty = (uv[:, 1] * T.shape[0]).astype(np.int64) % T.shape[0]
            alb[sel] = T[ty, tx]

    flip = np.einsum("ij,ij->i", nrm, _ray_dirs(K)) > 0
    np.negative(nrm, out=nrm, where=flip[:, None])
    L = (scene.light.direction / np.linalg.norm(scene.light.direction)).astype(np.float32)
    lam = np.maximum(nrm @ L, 0.0)
    if lit is not None:
        lam *= lit
    radiance = lam[:, None] * scene.light.color.astype(np.float32)
    lights = [(L, scene.light.color.astype(np.float32), lit)]
    for extra in scene.extra_lights:  # no shadows
        Le = (extra.direction / np.linalg.norm(extra.direction)).astype(np.float32)
        radiance += np.maximum(nrm @ Le, 0.0)[:, None] * extra.color.astype(np.float32)
        lights.append((Le, extra.color.astype(np.float32), None))
    radiance += scene.light.ambient.astype(np.float32)
    radiance *= alb
    specular = None
    if glossy:  # Blinn-Phong highlights, white (dielectric), on the glossy instances' pixels only
        specular = np.zeros(P, np.float32)
        dirs = _ray_dirs(K)
        for sel, ks, sh in glossy:
            n = nrm[sel]
            view = -dirs[sel] / np.linalg.norm(dirs[sel], axis=1, keepdims=True)
            for Ll, col, lt in lights:
                h = Ll[None, :] + view
                h /= np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-6)
                hl = ks * np.maximum(np.einsum("ij,ij->i", n, h), 0.0) ** sh * (n @ Ll > 0)
                if lt is not None:
                    hl *= lt[sel]
                radiance[sel] += (255.0 * hl)[:, None] * col
            specular[sel] = ks * np.maximum(np.einsum("ij,ij->i", n, view), 0.0) ** (4 * sh)
        specular = specular.reshape(H, W)
    radiance += 0.5
    color = np.minimum(radiance, 255).astype(np.uint8)
    return RenderOutput(color=color.reshape(H, W, 3), depth=depth.reshape(H, W),
                        instance=instance.reshape(H, W), nocs=nocs.reshape(H, W, 3),
                        normals=nrm.reshape(H, W, 3), albedo=alb.astype(np.uint8).reshape(H, W, 3),
                        handle=handle.reshape(H, W), specular=specular)


class EmbreeRenderer:
    """Embree ray casting (``embreex``): one ray per pixel centre, optional shadow rays.

    Args:
        shadows: cast shadow rays toward the directional light (objects: every pixel; table: every
            2×2 block; floor and wall: none).
    """

    def __init__(self, shadows: bool = True) -> None:
        self.shadows = shadows

    def cast(self, scene: Scene, intrinsics: Intrinsics) -> tuple[Hits, np.ndarray | None]:
        """Primary hits and (if shadows) the ``(P,)`` lit flags."""
        from embreex import rtcore_scene as rtcs
        from embreex.mesh_construction import TriangleMesh

        sc = rtcs.EmbreeScene()
        for V, F in _geometries(scene):
            TriangleMesh(sc, np.ascontiguousarray(V, dtype=np.float32), np.ascontiguousarray(F, dtype=np.int32))
        dirs = _ray_dirs(intrinsics)
        origins = np.zeros(dirs.shape, np.float32)
        res = sc.run(origins, dirs, output=1)
        geom = res["geomID"]
        hits = Hits(geom=geom, prim=np.where(geom >= 0, res["primID"], -1).astype(np.int32, copy=False),
                    b1=res["u"], b2=res["v"], depth=np.where(geom >= 0, res["tfar"], 0).astype(np.float32))
        lit = None
        if self.shadows:
            lit = self._shadows(sc, scene, intrinsics, res, hits, dirs)
        return hits, lit

    @staticmethod
    def _shadows(sc, scene: Scene, K: Intrinsics, res: dict, hits: Hits, dirs: np.ndarray) -> np.ndarray:
        """``(P,)`` lit flags: one shadow ray per object pixel and per 2×2 block of table pixels.

        Rays start at the hit point backed off along the view ray (which keeps them on the lit side)
        and go toward the light; points facing away from the light are unlit without a ray. Floor and
        wall are far from any occluder and are left unshadowed; table blocks share one ray.
        """
        n_inst = len(scene.instances)
        geom = hits.geom
        L = (scene.light.direction / np.linalg.norm(scene.light.direction)).astype(np.float32)
        anchor = _block_anchors(K)
        lit = geom > n_inst  # floor and wall: lit; misses: irrelevant
        table = geom == n_inst
        cand = np.flatnonzero((geom >= 0) & (geom <= n_inst))
        Ng = res["Ng"][cand]
        facing = (Ng @ L) * np.einsum("ij,ij->i", Ng, dirs[cand]) < 0  # back faces: unlit, no ray
        cand = cand[facing]
        idx = cand[~table[cand] | (anchor[cand] == cand)]
        p = dirs[idx] * (hits.depth[idx] * np.float32(1.0 - 2e-4))[:, None]
        occ = sc.run(p, np.ascontiguousarray(np.broadcast_to(L, p.shape)), query="OCCLUDED")
        lit[idx] = np.asarray(occ) == -1
        # other table pixels take the flag of their 2×2 block's anchor when it is a lit-facing table pixel
        rest = cand[table[cand] & (anchor[cand] != cand)]
        a = anchor[rest]
        facing_full = np.zeros(len(geom), bool)
        facing_full[cand] = True
        ok = table[a] & facing_full[a]
        lit[rest[ok]] = lit[a[ok]]
        lit[rest[~ok]] = True
        return lit

    def render(self, scene: Scene, intrinsics: Intrinsics) -> RenderOutput:
        """Render ``scene`` (see :class:`RenderOutput`)."""
        hits, lit = self.cast(scene, intrinsics)
        return shade(scene, intrinsics, hits, lit)


class TorchRenderer:
    """Vectorised z-buffer rasteriser in PyTorch (no shadows); the test oracle for Embree.

    Triangles with a vertex closer than ``near`` are dropped (background surfaces are finely
    subdivided so that none of them is visible). Pixel centres on an edge count as inside.

    Args:
        near: near-plane distance, metres. device: torch device for the rasterisation.
    """

    def __init__(self, near: float = 0.02, device: str = "cpu") -> None:
        self.near, self.device = near, device

    def cast(self, scene: Scene, intrinsics: Intrinsics) -> Hits:
        """Primary hits by rasterisation (same record as Embree's)."""
        import torch

        K = intrinsics
        H, W = K.height, K.width
        geoms = _geometries(scene)
        dev = torch.device(self.device)
        Vs, Fs, gid, pid = [], [], [], []
        off = 0
        for gi, (V, F) in enumerate(geoms):
            Vs.append(torch.as_tensor(V, dtype=torch.float64))
            Fs.append(torch.as_tensor(F, dtype=torch.int64) + off)
            gid.append(torch.full((len(F),), gi, dtype=torch.int64))
            pid.append(torch.arange(len(F), dtype=torch.int64))
            off += len(V)
        V = torch.cat(Vs).to(dev)
        F = torch.cat(Fs).to(dev)
        gid, pid = torch.cat(gid).to(dev), torch.cat(pid).to(dev)
        tri = V[F]  # (T, 3, 3)
        z = tri[..., 2]
        keep = (z > self.near).all(1)
        tri, z, gid, pid = tri[keep], z[keep], gid[keep], pid[keep]
        u = K.fx * tri[..., 0] / z + K.cx
        v = K.fy * tri[..., 1] / z + K.cy
        umin = torch.ceil(u.min(1).values).clamp(0, W - 1).long()
        umax = torch.floor(u.max(1).values).clamp(-1, W - 1).long()
        vmin = torch.ceil(v.min(1).values).clamp(0, H - 1).long()
        vmax = torch.floor(v.max(1).values).clamp(-1, H - 1).long()
        bw = (umax - umin + 1).clamp_min(0)
        bh = (vmax - vmin + 1).clamp_min(0)
        bw = torch.where(u.max(1).values < 0, torch.zeros_like(bw), bw)
        bh = torch.where(v.max(1).values < 0, torch.zeros_like(bh), bh)
        counts = bw * bh
        area = (u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (v[:, 1] - v[:, 0]) * (u[:, 2] - u[:, 0])
        counts = torch.where(area.abs() > 1e-12, counts, torch.zeros_like(counts))
        T = len(counts)
        face = torch.repeat_interleave(torch.arange(T, device=dev), counts)
        start = torch.cumsum(counts, 0) - counts
        local = torch.arange(len(face), device=dev) - start[face]
        px = umin[face] + local % bw[face]
        py = vmin[face] + torch.div(local, bw[face], rounding_mode="floor")

        def weights(f: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
            uf, vf, a = u[f], v[f], area[f]
            w0 = (uf[:, 2] - uf[:, 1]) * (y - vf[:, 1]) - (vf[:, 2] - vf[:, 1]) * (x - uf[:, 1])
            w1 = (uf[:, 0] - uf[:, 2]) * (y - vf[:, 2]) - (vf[:, 0] - vf[:, 2]) * (x - uf[:, 2])
            w2 = (uf[:, 1] - uf[:, 0]) * (y - vf[:, 0]) - (vf[:, 1] - vf[:, 0]) * (x - uf[:, 0])
            return w0 / a, w1 / a, w2 / a

        xf, yf = px.double(), py.double()
        l0, l1, l2 = weights(face, xf, yf)
        inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        face, px, py, l0, l1, l2 = face[inside], px[inside], py[inside], l0[inside], l1[inside], l2[inside]
        zf = z[face]
        inv_z = l0 / zf[:, 0] + l1 / zf[:, 1] + l2 / zf[:, 2]
        depth = (1.0 / inv_z).float()
        key = (depth.view(torch.int32).long() << 31) | face
        pix = py * W + px
        INF = torch.iinfo(torch.int64).max
        buf = torch.full((H * W,), INF, dtype=torch.int64, device=dev)
        buf.scatter_reduce_(0, pix, key, reduce="amin")
        hitm = buf != INF
        pix_hit = torch.nonzero(hitm)[:, 0]
        f = buf[pix_hit] & ((1 << 31) - 1)
        x, y = (pix_hit % W).double(), torch.div(pix_hit, W, rounding_mode="floor").double()
        l0, l1, l2 = weights(f, x, y)
        zf = z[f]
        q0, q1, q2 = l0 / zf[:, 0], l1 / zf[:, 1], l2 / zf[:, 2]
        s = q0 + q1 + q2
        P = H * W
        out_g = np.full(P, -1, np.int32)
        out_p = np.full(P, -1, np.int32)
        out_b1 = np.zeros(P, np.float32)
        out_b2 = np.zeros(P, np.float32)
        out_d = np.zeros(P, np.float32)
        ph = pix_hit.cpu().numpy()
        out_g[ph] = gid[f].cpu().numpy()
        out_p[ph] = pid[f].cpu().numpy()
        out_b1[ph] = (q1 / s).cpu().numpy()
        out_b2[ph] = (q2 / s).cpu().numpy()
        out_d[ph] = (1.0 / s).cpu().numpy()
        return Hits(geom=out_g, prim=out_p, b1=out_b1, b2=out_b2, depth=out_d)

    def render(self, scene: Scene, intrinsics: Intrinsics) -> RenderOutput:
        """Render ``scene`` (see :class:`RenderOutput`; no shadows)."""
        return shade(scene, intrinsics, self.cast(scene, intrinsics), None)


def get_renderer(name: str = "embree", **kwargs) -> Renderer:
    """``"embree"`` -> :class:`EmbreeRenderer`, ``"torch"`` -> :class:`TorchRenderer`."""
    if name == "embree":
        return EmbreeRenderer(**kwargs)
    if name == "torch":
        return TorchRenderer(**kwargs)
    raise ValueError(f"renderer: expected 'embree' or 'torch', got {name!r}")
