"""Generator version 2 knobs: each does what it says, is recorded, is deterministic; v1 and v2 reproduce their
versions' frames; each split records its frames' version."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from demopose.cli import main as cli_main
from demopose.synth.backgrounds import BACKGROUND_KINDS, CLUTTER_KINDS, background_texture
from demopose.synth.generate import GENERATOR_VERSION, SynthConfig, generate, intrinsics_for, make_frame, make_pool
from demopose.synth.materials import TEXTURE_KINDS, Material, apply_material, sample_material
from demopose.synth.noise import ColorNoiseConfig, DepthNoiseConfig, add_color_noise, add_depth_noise, projector_shadow
from demopose.synth.render import EmbreeRenderer
from demopose.synth.scene import SceneConfig, compose_scene
from demopose.synth.settings import V2_RANDOMIZATION, V3_SHAPES, Randomization, preset

# sha256 of (color, depth, instance) of frames made by the generator before version 2 (commit 7c456be),
# seed 3, split "test", 96x72, one model per category; `preset="v1"` must reproduce them bit for bit
V1_FRAMES = {
    ("real", True, 0): "2f64f3197f8cdb35397b55e89c78efe7663b99d64954c157842c5f7877be2aaa",
    ("camera", True, 1): "0acd18fa24fd9d7bce95dfccf5f8b8075ab7d01eb2d3d47848f49b1c8b743b63",
}
# the same for frames made by the generator before version 3 (commit fc55e1a) with its default preset "v2";
# `preset="v2"` must reproduce them bit for bit
V2_FRAMES = {
    ("real", True, 0): "a205bad3155be6cf43b14189d85e3141501ecda1217373c8bb32d0f3f4fe42ef",
    ("camera", True, 1): "7f0b4b56d17309246e57b2677132de6d3b64c6dc0b9c9b457e5c77c77d25b431",
}
OFF = ColorNoiseConfig(blur_sigma=(0.0, 0.0), gain=0.0, shot=(0.0, 0.0), read=(0.0, 0.0), exposure=(0.0, 0.0),
                       saturation=(1.0, 1.0), motion_blur_prob=0.0, vignetting=(0.0, 0.0), jpeg_quality=(0, 0))
K = intrinsics_for("real", 96, 72)


def _frame_hash(cfg: SynthConfig, index: int) -> str:
    f = make_frame(cfg, index, make_pool(cfg))
    h = hashlib.sha256()
    for a in (f.color, f.depth, f.render.instance):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _cfg(**kw) -> SynthConfig:
    base = dict(out="unused", frames=1, seed=3, split="test", width=96, height=72, models_per_category=1)
    base.update(kw)
    return SynthConfig(**base)


@pytest.mark.parametrize("key", list(V1_FRAMES))
def test_v1_preset_reproduces_version_1_frames(key):
    style, noise, index = key
    assert _frame_hash(_cfg(style=style, noise=noise, preset="v1"), index) == V1_FRAMES[key]


@pytest.mark.parametrize("key", list(V2_FRAMES))
def test_v2_preset_reproduces_version_2_frames(key):
    style, noise, index = key
    cfg = _cfg(style=style, noise=noise, preset="v2")
    assert cfg.shapes is None and cfg.frames_version == 2
    assert _frame_hash(cfg, index) == V2_FRAMES[key]


def test_v3_is_the_default_deterministic_per_seed_and_differs_from_v2():
    assert GENERATOR_VERSION == 3
    cfg = _cfg(style="real")
    assert cfg.preset == "v3" and cfg.randomization == V2_RANDOMIZATION and cfg.shapes == V3_SHAPES
    assert cfg.frames_version == 3
    a, b = _frame_hash(cfg, 0), _frame_hash(cfg, 0)
    assert a == b
    assert a != _frame_hash(_cfg(style="real", seed=4), 0)
    assert a != V2_FRAMES[("real", True, 0)]
    with pytest.raises(ValueError, match="preset"):
        _cfg(preset="v9")


def test_preset_v1_has_every_knob_off():
    scene, rz, depth, color, shapes = preset("v1")
    assert shapes is None and preset("v2")[4] is None and preset("v3")[4] == V3_SHAPES
    assert rz == Randomization() and not rz.enabled
    assert not depth.projector_shadow and depth.flying_prob == depth.erosion_prob == depth.specular_holes == 0
    assert color.jpeg_quality == (0, 0) and color.vignetting == (0.0, 0.0) and color.motion_blur_prob == 0
    assert scene.distance == (0.55, 1.0)


# ------------------------------------------------------------------------------------------ colour knobs
def _grey(v: float = 128.0, H: int = 48, W: int = 64) -> np.ndarray:
    return np.full((H, W, 3), v, np.uint8)


def test_vignetting_darkens_corners():
    out = add_color_noise(_grey(), np.random.default_rng(0), replace(OFF, vignetting=(0.5, 0.5))).astype(float)
    assert out[0, 0].mean() < 0.6 * out[24, 32].mean()
    assert out[24, 32].mean() == pytest.approx(128, abs=2)


def test_exposure_brightens_and_saturation_greys():
    up = add_color_noise(_grey(64), np.random.default_rng(0), replace(OFF, exposure=(1.0, 1.0)))
    assert up.mean() == pytest.approx(128, abs=2)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200
    grey = add_color_noise(red, np.random.default_rng(0), replace(OFF, saturation=(0.0, 0.0)))
    assert np.ptp(grey.astype(int), axis=-1).max() <= 1


def test_motion_blur_and_jpeg():
    rng = np.random.default_rng(1)
    img = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    blurred = add_color_noise(img, np.random.default_rng(0), replace(OFF, motion_blur_prob=1.0,
                                                                      motion_blur_px=(5.0, 5.0)))
    assert blurred.astype(float).std() < 0.8 * img.astype(float).std()
    jpg = add_color_noise(img, np.random.default_rng(0), replace(OFF, jpeg_quality=(20, 20)))
    assert jpg.shape == img.shape and jpg.dtype == np.uint8 and not np.array_equal(jpg, img)
    assert np.abs(jpg.astype(int) - img).mean() < 60


# ------------------------------------------------------------------------------------------- depth knobs
DEPTH_OFF = replace(DepthNoiseConfig.v1(), sigma_k=0.0, edge_drop_prob=0.0, speckle_prob=0.0, blobs=(0, 0),
                    grazing_deg=89.9)


def _step(H: int = 40, W: int = 80, near: float = 0.6, far: float = 1.0):
    """A near box (columns 30-49) in front of a far wall, normals facing the camera, white albedo."""
    d = np.full((H, W), far, np.float32)
    d[:, 30:50] = near
    n = np.zeros((H, W, 3), np.float32)
    n[..., 2] = -1
    return d, n, np.full((H, W, 3), 255, np.uint8)


def test_projector_shadow_falls_beside_nearer_surfaces_away_from_the_projector():
    d, _, _ = _step()
    f, b = 500.0, 0.035
    sh = projector_shadow(d, f, b, side=1)
    width = f * b * (1 / 0.6 - 1 / 1.0)  # 11.7 px
    row = sh[20]
    assert not row[30:].any()  # nothing on the object or to its right
    assert row[30 - int(width) + 1:30].all() and not row[: 30 - int(width) - 1].any()
    assert projector_shadow(d, f, b, side=-1)[20, 50:50 + int(width)].all()
    on = add_depth_noise(d, *_step()[1:], np.random.default_rng(0), f, replace(DEPTH_OFF, projector_shadow=True))
    assert (on[20, 20:30] == 0).sum() >= 9


def test_flying_pixels_erosion_and_border_band():
    d, n, a = _step()
    rng = np.random.default_rng(0)
    fly = add_depth_noise(d, n, a, rng, 500.0, replace(DEPTH_OFF, flying_prob=1.0))
    between = (fly > 0.605) & (fly < 0.995)  # off both surfaces (beyond their quantisation)
    assert between[:, 29].mean() > 0.8 and between[:, 50].mean() > 0.8  # the far pixels beside the edges
    assert not between[:, :29].any() and not between[:, 30:50].any() and not between[:, 51:].any()
    assert np.allclose(fly * 1000, np.round(fly * 1000), atol=1e-3)  # still whole millimetres
    ero = add_depth_noise(d, n, a, rng, 500.0, replace(DEPTH_OFF, erosion_prob=1.0))
    assert (ero[:, 30] == 0).all() and (ero[:, 49] == 0).all() and (ero[:, 35:45] > 0).all()
    band = add_depth_noise(d, n, a, rng, 640.0, replace(DEPTH_OFF, border_band=(8, 8)))
    assert (band[:, :1] == 0).all() and (band[:, 20:] > 0).all()


def test_dark_and_specular_surfaces_lose_depth():
    d, n, a = _step()
    rng = np.random.default_rng(0)
    cfg = replace(DEPTH_OFF, hole_blob_px=2.0, specular_holes=1.0)
    dark = np.full_like(a, 5)
    assert (add_depth_noise(d, n, dark, rng, 500.0, cfg) == 0).mean() > 0.5
    assert (add_depth_noise(d, n, a, rng, 500.0, cfg) == 0).mean() == 0
    spec = np.zeros(d.shape, np.float32)
    spec[:, :40] = 1.0
    out = add_depth_noise(d, n, a, rng, 500.0, cfg, specular=spec)
    assert (out[:, :40] == 0).all() and (out[:, 40:] > 0).all()


# --------------------------------------------------------------------------------- materials, lights, scene
def test_materials_texture_darken_and_gloss():
    rng = np.random.default_rng(0)
    p = rng.uniform(-0.5, 0.5, (500, 3)).astype(np.float32)
    flat = np.full((500, 3), 180, np.float32)
    for kind in TEXTURE_KINDS:
        m = sample_material(np.random.default_rng(1), 1.0, 0.0, 0.0)
        m.kind, m.strength = kind, 1.0
        if kind == "label":
            m.band, m.table = (-0.5, 0.5), np.arange(256) % 4
        out = apply_material(flat, p, m)
        assert out.shape == flat.shape and out.std(0).max() > 5, kind  # varies across the surface
    assert np.array_equal(apply_material(flat, p, Material()), flat)
    m = sample_material(np.random.default_rng(2), 0.0, 1.0, 1.0)
    assert m.kind == "none" and m.specular > 0 and m.dark < 0.25
    assert apply_material(flat, p, m).max() < 0.25 * 180


@pytest.fixture(scope="module")
def pool():
    return make_pool(_cfg(style="real", models_per_category=1))


def _render(pool, rz: Randomization, seed: int = 0):
    sc = compose_scene(np.random.default_rng(seed), pool, K, SceneConfig.v1(), rz, np.random.default_rng(9))
    return sc, EmbreeRenderer().render(sc, K)


def test_more_lights_brighten_and_change_shading(pool):
    sc1, r1 = _render(pool, Randomization())
    sc3, r3 = _render(pool, Randomization(lights=(3, 3)))
    assert len(sc1.extra_lights) == 0 and len(sc3.extra_lights) == 2
    assert np.array_equal(r1.instance, r3.instance)  # same geometry
    assert r3.color.astype(float).mean() > r1.color.astype(float).mean()


def test_textured_glossy_dark_objects_in_a_scene(pool):
    _, plain = _render(pool, Randomization())
    sc, r = _render(pool, Randomization(textured=1.0, specular=1.0, dark=1.0))
    assert all(i.material is not None and i.material.specular > 0 and i.material.dark < 1 for i in sc.instances)
    obj = r.instance > 0
    assert r.albedo[obj].mean() < 0.5 * plain.albedo[obj].mean()
    assert r.specular is not None and r.specular[obj].max() > 0 and plain.specular is None


def test_clutter_and_background_textures(pool):
    sc, r = _render(pool, Randomization(clutter=(4, 4), clutter_standing=0.5))
    names = [s.name for s in sc.surfaces]
    assert names[0] == "table" and any(n.startswith("clutter_") for n in names)
    assert all(n.split("_", 1)[1] in CLUTTER_KINDS for n in names if n.startswith("clutter_"))
    rng = np.random.default_rng(0)
    for kind in BACKGROUND_KINDS:
        t = background_texture(kind, rng, 64)
        assert t.shape == (64, 64, 3) and t.dtype == np.uint8 and t.std() > 0.5, kind
    with pytest.raises(ValueError, match="background"):
        background_texture("marble", rng)


def test_camera_distance_and_elevation_ranges(pool):
    cfg = SceneConfig(distance=(0.3, 0.32), elevation=(20.0, 22.0))
    for s in range(3):
        sc = compose_scene(np.random.default_rng(s), pool, K, cfg, V2_RANDOMIZATION, np.random.default_rng(s))
        assert cfg.min_height <= sc.camera_height < 0.3
        assert min(i.t[2] for i in sc.instances if i.class_id) < 0.6


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_knobs_are_recorded_and_each_preset_records_its_version(tmp_path):
    root = tmp_path / "d"
    argv = ["synth", str(root), "--frames", "1", "--style", "real", "--size", "64x48", "--no-progress",
            "--models-per-category", "1", "--vignetting", "0.1,0.2", "--lights", "2", "--textured", "0.5",
            "--projector-shadow", "off", "--table-textures", "carpet,paper", "--distance", "0.4,0.9"]
    assert cli_main(argv) == 0
    doc = json.loads((root / "Real" / "train_synth.json").read_text())
    c = doc["config"]
    assert doc["generator_version"] == GENERATOR_VERSION == 3 and c["preset"] == "v3"
    assert c["color"]["vignetting"] == [0.1, 0.2] and c["randomization"]["lights"] == [2, 2]
    assert c["randomization"]["textured"] == 0.5 and c["depth"]["projector_shadow"] is False
    assert c["randomization"]["table_textures"] == ["carpet", "paper"] and c["scene"]["distance"] == [0.4, 0.9]
    assert c["randomization"]["clutter"] == list(V2_RANDOMIZATION.clutter)  # not given: the preset's
    # resuming with another knob is refused
    assert cli_main([*argv[:-2], "--distance", "0.4,1.0"]) == 1
    old = tmp_path / "v1"
    assert cli_main(["synth", str(old), "--frames", "1", "--size", "64x48", "--no-progress", "--preset", "v1",
                     "--models-per-category", "1"]) == 0
    doc = json.loads((old / "CAMERA" / "train_synth.json").read_text())
    assert doc["config"]["preset"] == "v1" and doc["config"]["randomization"]["clutter"] == [0, 0]
    assert doc["generator_version"] == 1 and "shapes" not in doc["config"]
    # a shape knob needs version 3
    assert cli_main(["synth", str(tmp_path / "x"), "--frames", "1", "--preset", "v2", "--lid-angle", "90,100"]) == 1


def _small(tmp_path, **kw) -> SynthConfig:
    return SynthConfig(**{"out": str(tmp_path), "frames": 1, "width": 64, "height": 48, "models_per_category": 1,
                          **kw})


def test_a_split_records_its_frames_version_and_is_extended_only_with_it(tmp_path):
    info = tmp_path / "CAMERA" / "train_synth.json"
    v2 = _small(tmp_path, preset="v2")
    generate(v2, progress=False)
    doc = json.loads(info.read_text())
    # the record version-2 code writes (same version, same config keys): either code extends it
    assert doc["generator_version"] == 2 and "shapes" not in doc["config"]
    assert generate(replace(v2, frames=2), progress=False).written == 1
    with pytest.raises(ValueError, match="holds frames of generator version 2"):
        generate(_small(tmp_path, frames=3), progress=False)  # v3 frames into a v2 split
    # a --preset v1 split written by version-2 code was recorded as version 2: extended, record kept
    v1 = _small(tmp_path / "v1", preset="v1")
    generate(v1, progress=False)
    info1 = tmp_path / "v1" / "CAMERA" / "train_synth.json"
    doc = json.loads(info1.read_text())
    assert doc["generator_version"] == 1
    doc["generator_version"] = 2
    info1.write_text(json.dumps(doc))
    assert generate(replace(v1, frames=2), progress=False).written == 1
    assert json.loads(info1.read_text())["generator_version"] == 2


def test_extending_a_version_1_split_is_refused(tmp_path):
    cfg = _small(tmp_path, preset="v1")
    generate(cfg, progress=False)
    info = tmp_path / "CAMERA" / "train_synth.json"
    doc = json.loads(info.read_text())
    # what version-1 code wrote: no version, none of the version-2 settings
    del doc["generator_version"]
    for k in ("preset", "scene", "randomization", "depth", "color"):
        doc["config"].pop(k)
    info.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="other settings"):
        generate(replace(cfg, frames=2), progress=False)


def test_shape_flag_help_states_the_v3_defaults():
    """The `demopose synth` help of every shape knob quotes version 3's default; the quoted value, parsed by the
    flag's own type, is the preset's (the help text is written out to keep `--help` free of heavy imports)."""
    import re

    from demopose.cli.synth import SHAPE_KNOBS, _category_range
    from demopose.synth.settings import V3_SHAPES

    for flag, (name, typ, text) in SHAPE_KNOBS.items():
        quoted = re.search(r"v3: ([^)]*)\)", text).group(1)
        want = getattr(V3_SHAPES, name)
        if name == "sizes":
            lo, hi = (float(v) for v in quoted.split()[0].split(","))
            assert "every category" in quoted and all((a, b) == (lo, hi) for _c, a, b in want), flag
        elif name == "aspects":
            given = dict(_category_range(item) for item in quoted.split())
            assert given == {c: (a, b) for c, a, b in want}, flag
        elif quoted.startswith("all"):
            assert set(typ(",".join(want))) == set(want) and len(want) == {"three": 3, "four": 4}[quoted.split()[1]]
        else:
            assert typ(quoted) == want, (flag, quoted, want)
