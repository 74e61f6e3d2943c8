"""Procedural object meshes: canonical frame, sizes, orientation pinned on the NOCS fixtures, user meshes."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import trimesh

from demopose.categories import NOCS_REAL
from demopose.synth.meshes import (
    CATEGORIES,
    SIZE_RANGES,
    SIZE_RANGES_V3,
    SynthObject,
    load_user_mesh,
    make_distractor,
    make_object,
)
from demopose.synth.scene import _handle_faces
from demopose.synth.settings import V3_SHAPES
from demopose.synth.shapes import build_laptop, laptop_extents

FIX = Path(__file__).parent / "fixtures" / "nocs_sample" / "obj_models"
MUG_FIXTURE = FIX / "real_test" / "mug_daniel_norm.obj"
CAMERA_FIXTURE = FIX / "real_test" / "camera_canon_len_norm.obj"
LAPTOP_FIXTURES = sorted((FIX / "val" / "03642806").glob("*/model.obj"))
SEEDS = range(6)


def _centred(v: np.ndarray) -> np.ndarray:
    return v - (v.min(0) + v.max(0)) / 2


def _slab(v: np.ndarray, axis: int, frac: float, top: bool) -> tuple[np.ndarray, np.ndarray]:
    """Relative extents (3,) and centre (3,) of the vertices within ``frac`` of the box's top/bottom on axis."""
    lo, hi = v.min(0), v.max(0)
    ext = hi - lo
    m = v[:, axis] > hi[axis] - frac * ext[axis] if top else v[:, axis] < lo[axis] + frac * ext[axis]
    s = v[m]
    return (s.max(0) - s.min(0)) / ext, (s.max(0) + s.min(0)) / 2


def handle_direction(v: np.ndarray) -> tuple[int, int]:
    """(axis, sign) of a mug handle: the body axis is found from the bottom slab (no handle there)."""
    ext = v.max(0) - v.min(0)
    axis = 0 if ext[0] > ext[2] else 2
    _, body_centre = _slab(v, 1, 0.1, top=False)
    return axis, int(-np.sign(body_centre[axis]))  # the box is centred: the body sits opposite the handle


def laptop_layout(v: np.ndarray) -> dict:
    """Orientation features of an open laptop: where the lid's top edge is, how wide the base is."""
    top_ext, top_c = _slab(v, 1, 0.1, top=True)
    bot_ext, _ = _slab(v, 1, 0.1, top=False)
    ext = v.max(0) - v.min(0)
    return {"lid_top_x": top_c[0] / ext[0], "lid_top_xext": top_ext[0], "lid_top_zext": top_ext[2],
            "base_xext": bot_ext[0], "base_zext": bot_ext[2]}


def lens_features(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative extents of the +x front slab (lens tip) and of the -x back slab (body back)."""
    return _slab(v, 0, 0.1, top=True)[0], _slab(v, 0, 0.15, top=False)[0]


# ------------------------------------------------------------------ orientation of the NOCS fixtures
def test_fixture_mug_handle_is_plus_x():
    v = _centred(trimesh.load(MUG_FIXTURE, force="mesh", process=False).vertices)
    assert handle_direction(v) == (0, 1)


def test_fixture_camera_lens_is_plus_x():
    v = _centred(trimesh.load(CAMERA_FIXTURE, force="mesh", process=False).vertices)
    front, back = lens_features(v)
    assert front[1] < 0.85 and front[2] < 0.7  # the lens tip is narrower than the body ...
    assert back[1] > 0.9 and back[2] > 0.95  # ... and the back of the body spans the full y-z box
    assert np.ptp(v[:, 0]) > np.ptp(v[:, 1])  # the lens lengthens x


@pytest.mark.parametrize("path", LAPTOP_FIXTURES, ids=lambda p: p.parent.name[:8])
def test_fixture_laptop_hinge_minus_x_lid_up(path):
    v = trimesh.load(path, force="mesh", process=False).vertices * np.array([1.0, 1.0, -1.0])  # NOCS z flip
    lay = laptop_layout(_centred(v))
    assert lay["lid_top_x"] < -0.4  # the lid's top edge is at the -x end: hinge at -x, lid leans back
    assert lay["lid_top_xext"] < 0.2 and lay["lid_top_zext"] > 0.9  # the edge runs along z (hinge axis z)
    assert lay["base_xext"] > 0.55 and lay["base_zext"] > 0.9  # the base lies flat at the bottom


# ------------------------------------------------------------------------ procedural objects
@pytest.mark.parametrize("category", CATEGORIES)
def test_object_frame_size_and_closure(category):
    mean = np.asarray(NOCS_REAL[category].mean_size)
    lo_f, hi_f = (np.asarray(r) for r in SIZE_RANGES[category])
    ratios = []
    for seed in SEEDS:
        obj = make_object(category, np.random.default_rng(seed))
        assert isinstance(obj, SynthObject)
        assert obj.category == category and obj.class_id == NOCS_REAL[category].id
        assert obj.name.startswith(category + "_")
        lo, hi = obj.mesh.bounds
        np.testing.assert_allclose(lo, -hi, atol=1e-9)  # centred on the tight box
        np.testing.assert_allclose(obj.extents, obj.mesh.extents, atol=1e-12)
        assert np.all(obj.extents >= lo_f * mean) and np.all(obj.extents <= hi_f * mean), obj.extents / mean
        assert obj.face_colors.shape == (len(obj.mesh.faces), 3) and obj.face_colors.dtype == np.uint8
        assert 200 <= len(obj.mesh.faces) <= 5000
        assert obj.mesh.is_watertight and obj.mesh.is_winding_consistent
        assert obj.mesh.volume > 0  # outward normals
        assert obj.scale == pytest.approx(np.linalg.norm(obj.extents))
        ratios.append(obj.extents / obj.extents[1])
    # intra-class variation: the proportions differ between seeds
    assert np.ptp(np.array(ratios), axis=0).max() > 0.05


@pytest.mark.parametrize("category", CATEGORIES)
def test_object_deterministic_per_seed(category):
    a = make_object(category, np.random.default_rng(7))
    b = make_object(category, np.random.default_rng(7))
    c = make_object(category, np.random.default_rng(8))
    assert a.name == b.name and a.name != c.name
    np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
    np.testing.assert_array_equal(a.mesh.faces, b.mesh.faces)
    np.testing.assert_array_equal(a.face_colors, b.face_colors)
    assert not np.allclose(a.extents, c.extents)


@pytest.mark.parametrize("category", ["bottle", "bowl", "can"])
def test_symmetric_categories_are_round_about_y(category):
    for seed in SEEDS:
        e = make_object(category, np.random.default_rng(seed)).extents
        assert e[0] == pytest.approx(e[2], rel=1e-3)


def test_bottle_neck_and_cap_up():
    for seed in SEEDS:
        v = make_object("bottle", np.random.default_rng(seed)).mesh.vertices
        top, _ = _slab(v, 1, 0.1, top=True)
        bottom, _ = _slab(v, 1, 0.1, top=False)
        assert top[0] < 0.6 * bottom[0] and top[2] < 0.6 * bottom[2]


@pytest.mark.parametrize("category", ["bowl", "mug"])
def test_open_top_is_up(category):
    for seed in SEEDS:
        v = make_object(category, np.random.default_rng(seed)).mesh.vertices
        _, body_c = _slab(v, 1, 0.1, top=False)  # body axis (the mug handle shifts the box centre)
        r = np.hypot(v[:, 0] - body_c[0], v[:, 2] - body_c[2])
        ext = v.max(0) - v.min(0)
        near_axis = v[r < 0.15 * ext[2]]
        # nothing on the axis in the upper part: the opening faces +y
        assert near_axis[:, 1].max() < v[:, 1].min() + 0.3 * ext[1]


def test_mug_handle_matches_fixture():
    for seed in SEEDS:
        v = make_object("mug", np.random.default_rng(seed)).mesh.vertices
        assert handle_direction(v) == (0, 1)


def test_laptop_matches_fixture_layout():
    for seed in SEEDS:
        lay = laptop_layout(make_object("laptop", np.random.default_rng(seed)).mesh.vertices)
        assert lay["lid_top_x"] < -0.4
        assert lay["lid_top_xext"] < 0.2 and lay["lid_top_zext"] > 0.9
        assert lay["base_xext"] > 0.55 and lay["base_zext"] > 0.9


def test_camera_lens_matches_fixture():
    for seed in SEEDS:
        front, back = lens_features(make_object("camera", np.random.default_rng(seed)).mesh.vertices)
        assert front[1] < 0.85 and front[2] < 0.7
        assert back[1] > 0.9 and back[2] > 0.95


def test_unknown_category_raises():
    with pytest.raises(ValueError, match="category"):
        make_object("teapot", np.random.default_rng(0))


def test_distractors():
    for seed in range(12):
        obj = make_distractor(np.random.default_rng(seed))
        assert obj.class_id == 0 and obj.category == "distractor"
        np.testing.assert_allclose(obj.mesh.bounds[0], -obj.mesh.bounds[1], atol=1e-9)
        assert 0.02 <= obj.extents.max() <= 0.21
        assert obj.mesh.is_watertight and obj.mesh.volume > 0
        assert obj.face_colors.shape == (len(obj.mesh.faces), 3)


# ------------------------------------------------------------------------------ user meshes
def test_load_user_mesh_fixture_mug_extents():
    expected = np.loadtxt(FIX / "real_test" / "mug_daniel_norm.txt")
    obj = load_user_mesh(MUG_FIXTURE, "mug", target_size=float(np.linalg.norm(expected)))
    np.testing.assert_allclose(obj.extents, expected, atol=2e-5)
    np.testing.assert_allclose(obj.mesh.bounds[0], -obj.mesh.bounds[1], atol=1e-9)
    assert obj.class_id == NOCS_REAL["mug"].id and obj.name == "mug_daniel_norm"
    assert obj.face_colors.shape == (len(obj.mesh.faces), 3)
    # default size: the category's mean diagonal, proportions kept
    d = load_user_mesh(MUG_FIXTURE, "mug")
    assert d.scale == pytest.approx(np.linalg.norm(NOCS_REAL["mug"].mean_size))
    np.testing.assert_allclose(d.extents / d.scale, expected / np.linalg.norm(expected), atol=1e-5)


def test_load_user_mesh_axis_remap_and_colours(tmp_path):
    src = trimesh.load(MUG_FIXTURE, force="mesh", process=False)
    # a z-up copy whose handle points along -y, with a vertex colour
    z_up = src.copy()
    z_up.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # y -> z
    z_up.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [0, 0, 1]))  # x -> -y
    z_up.visual = trimesh.visual.ColorVisuals(z_up, vertex_colors=np.tile([200, 30, 40, 255], (len(z_up.vertices), 1)))
    path = tmp_path / "my_mug.ply"
    z_up.export(path)
    obj = load_user_mesh(path, "mug", target_size=float(np.linalg.norm(src.extents)), up_axis="z",
                         front_axis="-y")
    np.testing.assert_allclose(obj.extents, src.extents, atol=1e-5)
    assert handle_direction(obj.mesh.vertices) == (0, 1)
    assert np.all(obj.face_colors == [200, 30, 40])
    assert obj.name == "mug_my_mug"


def test_load_user_mesh_scene_glb(tmp_path):
    a = trimesh.creation.box(extents=[0.1, 0.2, 0.1])
    a.visual.face_colors = [10, 200, 10, 255]
    b = trimesh.creation.icosphere(radius=0.05)
    b.apply_translation([0.0, 0.15, 0.0])
    b.visual.face_colors = [10, 10, 200, 255]
    path = tmp_path / "two.glb"
    trimesh.Scene([a, b]).export(path)
    obj = load_user_mesh(path, "bottle", target_size=[0.08, 0.25, 0.08])
    np.testing.assert_allclose(obj.extents, [0.08, 0.25, 0.08], atol=1e-9)
    assert len(obj.mesh.faces) == len(a.faces) + len(b.faces)
    colours = {tuple(c) for c in obj.face_colors}
    assert (10, 200, 10) in colours and (10, 10, 200) in colours


def test_load_user_mesh_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.obj"):
        load_user_mesh(tmp_path / "nope.obj", "mug")
    with pytest.raises(ValueError, match="category"):
        load_user_mesh(MUG_FIXTURE, "teapot")
    with pytest.raises(ValueError, match="up_axis"):
        load_user_mesh(MUG_FIXTURE, "mug", up_axis="w")
    with pytest.raises(ValueError, match="front_axis"):
        load_user_mesh(MUG_FIXTURE, "mug", up_axis="z", front_axis="-z")


def test_load_user_mesh_textured_obj_keeps_texture_colours():
    path = next(p for p in LAPTOP_FIXTURES if (p.parent / "texture0.jpg").exists())
    raw = trimesh.load(path, force="mesh", process=False)
    obj = load_user_mesh(path, "laptop")
    assert len({tuple(c) for c in obj.face_colors}) > 50  # sampled from the texture images
    assert obj.scale == pytest.approx(np.linalg.norm(NOCS_REAL["laptop"].mean_size))
    np.testing.assert_allclose(obj.extents / obj.scale, raw.extents / np.linalg.norm(raw.extents), atol=1e-6)


# ----------------------------------------------------- version 3: shape and size variety (ShapeVariety)
V3_SEEDS = range(40)
FIXTURE_EXTENTS = {p.name.split("_")[0]: np.loadtxt(p) for p in sorted((FIX / "real_test").glob("*_norm.txt"))}


@pytest.mark.parametrize("category", CATEGORIES)
def test_v3_object_frame_size_and_closure(category):
    mean = np.asarray(NOCS_REAL[category].mean_size)
    lo_s, hi_s = V3_SHAPES.size(category)
    lo_f, hi_f = (np.asarray(r) for r in SIZE_RANGES_V3[category])
    for seed in V3_SEEDS:
        obj = make_object(category, np.random.default_rng(seed), V3_SHAPES)
        lo, hi = obj.mesh.bounds
        np.testing.assert_allclose(lo, -hi, atol=1e-9)  # centred on the tight box
        np.testing.assert_allclose(obj.extents, obj.mesh.extents, atol=1e-12)
        # the NOCS scale is the drawn multiple of the mean size's diagonal, inside the size range
        assert obj.scale == pytest.approx(obj.params["scale"] * np.linalg.norm(mean), rel=1e-9)
        assert lo_s <= obj.params["scale"] <= hi_s
        assert np.all(obj.extents >= lo_f * mean) and np.all(obj.extents <= hi_f * mean), obj.extents / mean
        assert obj.face_colors.shape == (len(obj.mesh.faces), 3) and obj.face_colors.dtype == np.uint8
        assert 200 <= len(obj.mesh.faces) <= 5000
        assert obj.mesh.is_watertight and obj.mesh.is_winding_consistent and obj.mesh.volume > 0


@pytest.mark.parametrize("category", CATEGORIES)
def test_v3_deterministic_per_seed_and_v2_untouched(category):
    a = make_object(category, np.random.default_rng(7), V3_SHAPES)
    b = make_object(category, np.random.default_rng(7), V3_SHAPES)
    np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
    np.testing.assert_array_equal(a.face_colors, b.face_colors)
    assert a.params == b.params
    old, none = make_object(category, np.random.default_rng(7)), make_object(category, np.random.default_rng(7), None)
    np.testing.assert_array_equal(old.mesh.vertices, none.mesh.vertices)
    assert old.params == {} and old.handle_faces is None


def test_v3_size_range_knob_sets_the_diagonal():
    shapes = V3_SHAPES.replace_ranges("sizes", {"can": (1.0, 1.0), "mug": (0.5, 0.5)})
    for seed in range(5):
        for cat, f in (("can", 1.0), ("mug", 0.5)):
            obj = make_object(cat, np.random.default_rng(seed), shapes)
            assert obj.scale == pytest.approx(f * np.linalg.norm(NOCS_REAL[cat].mean_size), rel=1e-9)
    with pytest.raises(ValueError, match="sizes"):
        V3_SHAPES.replace_ranges("sizes", {"teapot": (1.0, 1.0)})


@pytest.mark.parametrize("category", ["bottle", "can"])
def test_v3_aspect_is_height_over_diameter(category):
    lo, hi = V3_SHAPES.aspect(category)
    asp = []
    for seed in V3_SEEDS:
        obj = make_object(category, np.random.default_rng(seed), V3_SHAPES)
        e = obj.extents
        assert e[0] == pytest.approx(e[2], rel=1e-9)  # round about y
        assert e[1] / e[0] == pytest.approx(obj.params["height"] / obj.params["diameter"], rel=1e-9)
        asp.append(e[1] / e[0])
    assert lo <= min(asp) and max(asp) <= hi and max(asp) - min(asp) > 0.5 * (hi - lo)


@pytest.mark.parametrize("angle", [70.0, 90.0, 120.0, 150.0])
def test_laptop_lid_angle_gives_the_extents_formula(angle):
    shapes = replace(V3_SHAPES, lid_angle=(angle, angle))
    for seed in range(4):
        info: dict = {}
        mesh, _ = build_laptop(np.random.default_rng(seed), NOCS_REAL["laptop"].mean_size, shapes, info)
        assert info["lid_angle"] == angle and info["lid_t"] <= info["base_t"]
        expected = laptop_extents(info["depth"], info["lid"], info["base_t"], info["lid_t"], angle)
        expected[2] = info["width"]
        np.testing.assert_allclose(mesh.extents, expected, rtol=1e-9, atol=1e-12)
        if angle == 90.0:  # upright lid: x = D + t_lid, y = t_base + L
            np.testing.assert_allclose(mesh.extents[:2], [info["depth"] + info["lid_t"], info["base_t"] + info["lid"]])
        lay = laptop_layout(mesh.vertices - (mesh.bounds[0] + mesh.bounds[1]) / 2)
        # the base lies flat at the bottom, spanning the width and its depth D of the x extent
        assert lay["base_xext"] >= info["depth"] / mesh.extents[0] - 1e-9 and lay["base_zext"] > 0.9
        assert lay["lid_top_zext"] > 0.9  # the lid's top edge runs along z (hinge axis z)
        if angle >= 90:  # upright or leaning back: the fixture's layout (hinge at -x)
            assert lay["lid_top_x"] < -0.4
        else:  # leaning forward over the base (+x), hinge still at -x
            assert lay["lid_top_x"] > -0.4


@pytest.mark.parametrize("kind", ["round", "square", "ear"])
def test_mug_handle_of_every_kind_is_on_plus_x(kind):
    shapes = replace(V3_SHAPES, handle_kinds=(kind,))
    for seed in range(6):
        obj = make_object("mug", np.random.default_rng(seed), shapes)
        assert obj.params["kind"] == kind
        v = obj.mesh.vertices
        assert handle_direction(v) == (0, 1)
        hf = obj.handle_faces
        assert hf.dtype == bool and hf.shape == (len(obj.mesh.faces),) and 0 < hf.sum() < len(hf) // 2
        hc = obj.mesh.triangles_center[hf]
        assert obj.mesh.vertices[obj.mesh.faces[hf]].reshape(-1, 3)[:, 0].max() == pytest.approx(v[:, 0].max())
        assert np.all(np.abs(hc[:, 2]) < 0.5 * obj.extents[2])  # in the x-y plane, inside the body's z range
        # the scene marks exactly these faces as the handle
        assert np.array_equal(_handle_faces(obj, v, obj.mesh.faces, obj.extents, "mug"), hf)
        # reach: x extent - body diameter, relative to the body diameter, is the drawn handle reach
        f = obj.params["factor"]
        assert obj.extents[0] - obj.extents[2] == pytest.approx(obj.params["reach"] * f, rel=0.25)


def test_camera_lens_variety_stays_on_plus_x():
    with_lens = replace(V3_SHAPES, lens_share=1.0)
    without = replace(V3_SHAPES, lens_share=0.0)
    for seed in range(8):
        a = make_object("camera", np.random.default_rng(seed), with_lens)
        b = make_object("camera", np.random.default_rng(seed), without)
        assert a.params["has_lens"] and not b.params["has_lens"]
        front, back = lens_features(a.mesh.vertices)
        assert front[1] < 0.85 and front[2] < 0.7  # the lens tip on +x is narrower than the body
        assert back[2] > 0.95  # the body's back spans the width
        # same body, no barrel: a shorter x extent relative to the width
        assert b.extents[0] / b.extents[2] < a.extents[0] / a.extents[2]
        fb, _ = lens_features(b.mesh.vertices)
        assert fb[2] < 0.95  # the front slab of a body-cap camera: mount (and grip), not the whole body
    long_lens = replace(V3_SHAPES, lens_share=1.0, lens_length=(0.85, 0.85))
    short_lens = replace(V3_SHAPES, lens_share=1.0, lens_length=(0.25, 0.25))
    for seed in range(4):
        lo = make_object("camera", np.random.default_rng(seed), short_lens)
        hi = make_object("camera", np.random.default_rng(seed), long_lens)
        assert hi.extents[0] / hi.extents[2] > lo.extents[0] / lo.extents[2]


@pytest.mark.parametrize("kind", ["round", "conical", "flat", "straight"])
def test_bottle_shoulders_neck_and_cap_up(kind):
    shapes = replace(V3_SHAPES, bottle_shoulders=(kind,))
    for seed in range(4):
        obj = make_object("bottle", np.random.default_rng(seed), shapes)
        assert obj.params["kind"] == kind and obj.mesh.is_watertight
        top, _ = _slab(obj.mesh.vertices, 1, 0.05, top=True)
        bottom, _ = _slab(obj.mesh.vertices, 1, 0.1, top=False)
        assert top[0] < (0.99 if kind == "straight" else 0.6) * bottom[0]


def test_v3_bowl_and_mug_open_top_is_up():
    for category in ("bowl", "mug"):
        for seed in range(8):
            v = make_object(category, np.random.default_rng(seed), V3_SHAPES).mesh.vertices
            _, body_c = _slab(v, 1, 0.1, top=False)
            r = np.hypot(v[:, 0] - body_c[0], v[:, 2] - body_c[2])
            ext = v.max(0) - v.min(0)
            near_axis = v[r < 0.15 * ext[2]]
            assert near_axis[:, 1].max() < v[:, 1].min() + 0.3 * ext[1]


@pytest.mark.parametrize("category", sorted(FIXTURE_EXTENTS))
def test_v3_sizes_cover_the_fixture_instances(category):
    """Each REAL275 fixture model (an example of a real instance) has a version-3 draw within 10 % on every
    axis among 200; version 2 has none for the camera with its long lens and the narrow mug."""
    target = FIXTURE_EXTENTS[category]
    err = min(np.abs(np.log(make_object(category, np.random.default_rng(s), V3_SHAPES).extents / target)).max()
              for s in range(200))
    assert err < np.log(1.1), err
