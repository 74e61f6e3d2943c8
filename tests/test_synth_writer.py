"""NOCS-layout writer: encodings match the original files and decode through the readers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from demopose.data.nocs_files import decode_camera_depth, decode_coord, read_depth, read_mask
from demopose.synth.writer import (
    encode_camera_depth,
    encode_coord,
    encode_depth_mm,
    encode_mask,
    frame_paths,
    remove_stray_temp_files,
)

FIX = Path(__file__).parent / "fixtures" / "nocs_sample"


def _rand_maps(rng, H=24, W=32):
    inst = rng.integers(0, 4, (H, W)).astype(np.int32)
    depth = rng.uniform(0.3, 1.5, (H, W)).astype(np.float32)
    nocs = rng.uniform(-0.5, 0.5, (H, W, 3)).astype(np.float32)
    nocs[inst == 0] = np.nan
    return inst, depth, nocs


def test_camera_depth_encoding_round_trip_and_layout():
    rng = np.random.default_rng(0)
    inst, depth, _ = _rand_maps(rng)
    img = encode_camera_depth(depth, inst)
    ref = cv2.imread(str(FIX / "CAMERA/val/00000/0000_depth.png"), cv2.IMREAD_UNCHANGED)
    assert img.dtype == ref.dtype and img.ndim == ref.ndim and img.shape[2] == ref.shape[2] == 4
    mm = decode_camera_depth(img)
    assert np.array_equal(mm[inst > 0], np.round(depth[inst > 0] * 1000).astype(int))
    assert (mm[inst == 0] == 0).all()
    raw = img[..., 1].astype(int) * 256 + img[..., 2]
    assert (raw[inst == 0] == 32001).all()
    # background pixels look exactly like the original's (B=255, G=125, R=1, A=255)
    ref_bg = ref[(ref[..., 1].astype(int) * 256 + ref[..., 2]) == 32001][0]
    assert img[inst == 0][0].tolist() == ref_bg.tolist()
    # the B preview channel follows the original's relation to depth within one step
    ref_mm = ref[..., 1].astype(int) * 256 + ref[..., 2]
    obj = ref_mm != 32001
    enc = encode_camera_depth(ref_mm[obj].astype(np.float32)[None] / 1000, np.ones((1, obj.sum()), int))
    assert np.abs(enc[0, :, 0].astype(int) - ref[obj][:, 0]).max() <= 1


def test_mask_and_coord_encodings_match_fixture_layout():
    rng = np.random.default_rng(1)
    inst, _, nocs = _rand_maps(rng)
    for style, folder in (("camera", "CAMERA/val/00000"), ("real", "Real/test/scene_1")):
        m = encode_mask(inst, style)
        ref = cv2.imread(str(FIX / folder / "0000_mask.png"), cv2.IMREAD_UNCHANGED)
        assert m.dtype == ref.dtype and m.ndim == ref.ndim and (m.ndim == 2 or m.shape[2] == ref.shape[2])
        c = encode_coord(nocs, inst, style)
        refc = cv2.imread(str(FIX / folder / "0000_coord.png"), cv2.IMREAD_UNCHANGED)
        assert c.dtype == refc.dtype and c.shape[2] == refc.shape[2]
        dec = decode_coord(c, inst > 0)
        assert np.nanmax(np.abs(dec - nocs)) <= 0.5 / 255 + 1e-6
        assert np.isnan(dec[inst == 0]).all()
    with pytest.raises(ValueError, match="style"):
        encode_mask(inst, "blender")
    with pytest.raises(ValueError, match="< 255"):
        encode_mask(np.full((2, 2), 300), "real")


def test_files_decode_through_readers(tmp_path):
    rng = np.random.default_rng(2)
    inst, depth, _ = _rand_maps(rng)
    p = tmp_path / "m.png"
    cv2.imwrite(str(p), encode_mask(inst, "camera"))
    assert np.array_equal(read_mask(p), inst)
    p = tmp_path / "d.png"
    cv2.imwrite(str(p), encode_depth_mm(depth))
    d, enc = read_depth(p)
    assert enc == "uint16" and np.abs(d - depth).max() <= 0.0005 + 1e-6


def test_frame_paths_layout(tmp_path):
    p = frame_paths(tmp_path, "camera", "val", 23)
    assert p.file("color") == tmp_path / "CAMERA/val/00002/0003_color.png"
    assert p.composed == tmp_path / "camera_full_depths/val/00002/0003_composed.png"
    assert p.gts == tmp_path / "gts/val/results_val_00002_0003.pkl"
    assert p.list_entry == "val/00002/0003" and p.all_files()[-1] == p.meta
    r = frame_paths(tmp_path, "real", "test", 105, frames_per_scene=100)
    assert r.file("depth") == tmp_path / "Real/test/scene_2/0005_depth.png"
    assert r.gts == tmp_path / "gts/real_test/results_real_test_scene_2_0005.pkl"
    assert r.composed is None and r.list_file == tmp_path / "Real/test_list.txt"


def test_remove_stray_temp_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".0000_color.png.k2j_x9ab.png").write_bytes(b"x")
    (tmp_path / "a" / "0000_color.png").write_bytes(b"x")
    assert remove_stray_temp_files(tmp_path) == 1
    assert [f.name for f in (tmp_path / "a").iterdir()] == ["0000_color.png"]


def _single_mug_scene(yaw_deg: float):
    from demopose.synth import meshes
    from demopose.synth.scene import Instance, Light, Scene, _handle_faces

    obj = meshes.make_object("mug", np.random.default_rng(3))
    V = np.asarray(obj.mesh.vertices, float)
    F = np.asarray(obj.mesh.faces, np.int32)
    hf = _handle_faces(obj, V, F, obj.extents, "mug")
    a = np.radians(yaw_deg)
    Ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    # camera looks horizontally at the mug: object y up = camera -y
    R = np.diag([1.0, -1.0, -1.0]) @ Ry
    inst = Instance(1, 6, "mug", "mug_x", "0" * 32, "03797390", V, F, obj.face_colors, obj.extents, R,
                    np.array([0.0, 0.0, 0.6]), hf)
    light = Light(np.array([0.0, 0.0, -1.0]), np.ones(3), np.full(3, 0.3))
    return Scene([inst], [], light), hf


@pytest.mark.parametrize("yaw, visible", [(0.0, True), (-90.0, True), (90.0, False)])
def test_handle_visibility_from_render(yaw, visible):
    """Mug handle along object +x: to the camera's right or towards it is visible, behind the body not."""
    from demopose.synth.generate import intrinsics_for
    from demopose.synth.render import EmbreeRenderer
    from demopose.synth.writer import gt_record

    scene, hf = _single_mug_scene(yaw)
    assert 0 < hf.sum() < len(hf) // 2
    K = intrinsics_for("camera", 160, 120)
    out = EmbreeRenderer(shadows=False).render(scene, K)
    g = gt_record(scene, out.instance, out.handle, 0, "x", {1: "m.obj"})
    assert g["gt_class_ids"].tolist() == [6]
    assert bool(g["gt_handle_visibility"][0]) is visible
