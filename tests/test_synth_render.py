"""Synthetic scenes and renderers: Embree vs the torch z-buffer oracle, exact NOCS maps, noise."""

from __future__ import annotations

import numpy as np
import pytest

from demopose.geometry import umeyama
from demopose.geometry.rotation import rotation_angle_deg
from demopose.synth import meshes
from demopose.synth.generate import intrinsics_for
from demopose.synth.noise import DepthNoiseConfig, add_color_noise, add_depth_noise
from demopose.synth.render import EmbreeRenderer, TorchRenderer
from demopose.synth.scene import ModelPool, SceneConfig, compose_scene, look_at, procedural_texture

K_SMALL = intrinsics_for("camera", 160, 120)


@pytest.fixture(scope="module")
def pool() -> ModelPool:
    return ModelPool(0, "test", 2, meshes.make_object, meshes.make_distractor, meshes.CATEGORIES)


@pytest.fixture(scope="module")
def scenes(pool):
    return [compose_scene(np.random.default_rng(s), pool, K_SMALL) for s in range(4)]


def test_look_at_is_opencv():
    # camera above the origin looking straight down (-y world): world +x is image right or left, z forward = down
    M = look_at(np.array([0.0, 1.0, -1.0]), np.zeros(3))
    R = M[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)
    p = M[:3, :3] @ np.zeros(3) + M[:3, 3]
    assert p[0] == pytest.approx(0, abs=1e-12) and p[1] == pytest.approx(0, abs=1e-12) and p[2] > 0
    up = M[:3, :3] @ np.array([0.0, 1.0, 0.0])  # world up points to image top: negative camera y
    assert up[1] < 0


def test_scene_composition(scenes):
    cfg = SceneConfig()
    for sc in scenes:
        assert 1 <= sum(i.class_id > 0 for i in sc.instances) <= 6
        assert [i.inst_id for i in sc.instances] == list(range(1, len(sc.instances) + 1))
        for inst in sc.instances:
            assert np.allclose(inst.R @ inst.R.T, np.eye(3), atol=1e-9)
            assert 0.1 < inst.t[2] < cfg.distance[1] + 0.8  # in front of the camera at table distance
        assert cfg.min_height <= sc.camera_height <= cfg.distance[1] + 0.1
        # no interpenetration: box-centred footprints in the world are disjoint (checked on centres)
        Mw = sc.world_from_camera
        cw = [Mw[:3, :3] @ i.t + Mw[:3, 3] for i in sc.instances]
        for a in range(len(cw)):
            for b in range(a + 1, len(cw)):
                assert np.hypot(*(cw[a] - cw[b])[[0, 2]]) > 0.02


def test_embree_and_torch_agree(scenes):
    agree, total = 0, 0
    for sc in scenes:
        a = EmbreeRenderer(shadows=False).render(sc, K_SMALL)
        b = TorchRenderer().render(sc, K_SMALL)
        agree += int((a.instance == b.instance).sum())
        total += a.instance.size
        both = (a.instance == b.instance) & (a.instance > 0)
        assert np.abs(a.depth - b.depth)[both].max() < 1e-4
        assert np.nanmax(np.abs(a.nocs - b.nocs)[both]) < 1e-3
        assert (a.instance > 0).sum() > 50
        # the whole hit record (table, floor and wall triangles included) agrees as well
        ha, hb = EmbreeRenderer(shadows=False).cast(sc, K_SMALL)[0], TorchRenderer().cast(sc, K_SMALL)
        assert (ha.geom == hb.geom).mean() >= 0.999
    assert agree / total >= 0.999


def test_nocs_map_recovers_pose_exactly(scenes):
    """Umeyama from the float NOCS map to back-projected depth gives the scene pose (float render)."""
    K = K_SMALL
    n_checked = 0
    for sc in scenes:
        out = EmbreeRenderer().render(sc, K)
        for inst in sc.instances:
            m = out.instance == inst.inst_id
            if m.sum() < 30:
                continue
            v, u = np.nonzero(m)
            z = out.depth[m].astype(np.float64)
            pts = np.stack([(u - K.cx) * z / K.fx, (v - K.cy) * z / K.fy, z], 1)
            s, R, t = umeyama(out.nocs[m].astype(np.float64), pts)
            assert s == pytest.approx(inst.scale, rel=1e-4)
            assert np.linalg.norm(t - inst.t) < 1e-4
            assert rotation_angle_deg(R, inst.R) < 0.05
            n_checked += 1
    assert n_checked >= 4


def test_render_outputs_and_shading(scenes):
    out = EmbreeRenderer().render(scenes[0], K_SMALL)
    H, W = K_SMALL.height, K_SMALL.width
    assert out.color.shape == (H, W, 3) and out.color.dtype == np.uint8
    assert out.depth.dtype == np.float32 and out.instance.dtype == np.int32
    obj = out.instance > 0
    assert np.isfinite(out.nocs[obj]).all() and np.isnan(out.nocs[~obj]).all()
    assert np.abs(out.nocs[obj]).max() <= 0.5 + 1e-5
    n = np.linalg.norm(out.normals[out.depth > 0], axis=1)
    assert np.allclose(n, 1, atol=1e-4)
    assert out.color[out.depth > 0].mean() > 20  # lit


def test_textures_are_tileable_and_valid():
    rng = np.random.default_rng(0)
    for kind in ("wood", "noise", "checker"):
        t = procedural_texture(kind, rng)
        assert t.shape == (256, 256, 3) and t.dtype == np.uint8 and t.std() > 1
    with pytest.raises(ValueError, match="kind"):
        procedural_texture("marble", rng)


def test_depth_noise_properties(scenes):
    out = EmbreeRenderer().render(scenes[1], K_SMALL)
    v1 = DepthNoiseConfig.v1()  # the axial noise alone (no flying pixels)
    noisy = add_depth_noise(out.depth, out.normals, out.albedo, np.random.default_rng(5), focal=K_SMALL.fx, cfg=v1)
    again = add_depth_noise(out.depth, out.normals, out.albedo, np.random.default_rng(5), focal=K_SMALL.fx, cfg=v1)
    assert np.array_equal(noisy, again)  # deterministic per seed
    ok = (noisy > 0) & (out.depth > 0)
    assert 0.5 < ok.sum() / (out.depth > 0).sum() < 0.999  # holes, but mostly valid
    assert np.allclose(noisy[ok] * 1000, np.round(noisy[ok] * 1000), atol=1e-3)  # mm quantised
    err = noisy[ok] - out.depth[ok]
    z = out.depth[ok]
    assert np.abs(err).mean() < 0.01 and err.std() > 1e-4
    # error grows with distance (sigma ∝ z²)
    near, far = z < np.median(z), z >= np.median(z)
    assert np.abs(err[far]).mean() > np.abs(err[near]).mean()
    c = add_color_noise(out.color, np.random.default_rng(1))
    assert c.dtype == np.uint8 and c.shape == out.color.shape and not np.array_equal(c, out.color)
