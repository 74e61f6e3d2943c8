"""Synthetic dataset generation: pose-exact files, determinism, resumability, loading through the readers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from demopose.cli import main as cli_main
from demopose.data.nocs import NOCSDataset, load_frame
from demopose.data.nocs_files import read_gts_pkl
from demopose.geometry import umeyama
from demopose.geometry.rotation import rotation_angle_deg
from demopose.synth import generate as gen
from demopose.synth.generate import SynthConfig, generate, intrinsics_for
from demopose.synth.writer import frame_paths


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _cfg(out, **kw) -> SynthConfig:
    base = dict(out=str(out), frames=4, seed=7, style="camera", split="val", width=160, height=120,
                models_per_category=2, mpl_points=64)
    base.update(kw)
    return SynthConfig(**base)


def test_written_files_recover_stored_pose(tmp_path):
    """Noise-free frames: Umeyama(NOCS map -> depth) from the files gives the gts pose (1 mm, 0.5°)."""
    cfg = _cfg(tmp_path, frames=3, noise=False, width=320, height=240)
    generate(cfg, progress=False)
    K = intrinsics_for("camera", 320, 240)
    checked = 0
    for i in range(cfg.frames):
        p = frame_paths(tmp_path, "camera", "val", i)
        f = load_frame(p.stem, depth="object")
        assert f.meta["pose_source"] == "gts"
        for k, pose in enumerate(f.poses):
            m = f.instance_map == f.instance_ids[k]
            m &= f.depth > 0
            if m.sum() < 300:
                continue
            v, u = np.nonzero(m)
            z = f.depth[m].astype(np.float64)
            pts = np.stack([(u - K.cx) * z / K.fx, (v - K.cy) * z / K.fy, z], 1)
            s, R, t = umeyama(f.nocs[m].astype(np.float64), pts)
            assert np.linalg.norm(t - pose.t) < 1e-3
            assert rotation_angle_deg(R, pose.R) < 0.5
            assert s == pytest.approx(pose.scale, rel=0.01)
            checked += 1
    assert checked >= 3


def test_same_seed_same_files_any_workers(tmp_path):
    generate(_cfg(tmp_path / "a", workers=1), progress=False)
    generate(_cfg(tmp_path / "b", workers=2), progress=False)
    ha, hb = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert ha == hb and len(ha) > 4 * 7
    generate(_cfg(tmp_path / "c", seed=8, frames=1), progress=False)
    hc = _hashes(tmp_path / "c")
    color = "CAMERA/val/00000/0000_color.png"
    assert hc[color] != ha[color]


def test_killed_run_resumes_without_corrupt_frames(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    generate(_cfg(ref, style="real", split="test", frames=5), progress=False)
    out = tmp_path / "out"
    real_write = gen.write_frame
    calls = {"n": 0}

    def flaky(root, style, split, index, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:  # die in the middle of the third frame: some files written, no meta
            p = frame_paths(root, style, split, index)
            p.file("color").parent.mkdir(parents=True, exist_ok=True)
            p.file("color").write_bytes(b"half")
            (p.file("color").parent / ".0002_depth.png.ab12cd34.png").write_bytes(b"tmp")
            raise RuntimeError("killed")
        return real_write(root, style, split, index, *a, **kw)

    monkeypatch.setattr(gen, "write_frame", flaky)
    with pytest.raises(RuntimeError, match="killed"):
        generate(_cfg(out, style="real", split="test", frames=5), progress=False)
    monkeypatch.setattr(gen, "write_frame", real_write)
    lst = (out / "Real/test_list.txt").read_text().split()
    assert lst == ["test/scene_1/0000", "test/scene_1/0001"]  # only complete frames are listed
    # also simulate a kill after everything but the meta file of a complete frame
    rep = generate(_cfg(out, style="real", split="test", frames=5), progress=False)
    assert rep.skipped == 2 and rep.written == 3
    frame_paths(out, "real", "test", 1).meta.unlink()
    rep = generate(_cfg(out, style="real", split="test", frames=5), progress=False)
    assert rep.written == 1
    assert _hashes(out) == _hashes(ref)  # identical to an uninterrupted run: no stray or corrupt files


def test_resume_with_other_settings_is_refused(tmp_path):
    generate(_cfg(tmp_path, frames=1), progress=False)
    with pytest.raises(ValueError, match="seed"):
        generate(_cfg(tmp_path, frames=1, seed=99), progress=False)


def test_generated_folder_loads_through_readers(tmp_path):
    generate(_cfg(tmp_path, frames=3), progress=False)
    generate(_cfg(tmp_path, frames=2, style="real", split="test"), progress=False)
    generate(_cfg(tmp_path, frames=2, split="train"), progress=False)
    for subset, n in (("camera_val", 3), ("real_test", 2), ("camera_train", 2)):
        ds = NOCSDataset(tmp_path, subset)
        assert len(ds) == n
        for f in ds:
            assert f.rgb.shape == (120, 160, 3) and f.depth.shape == (120, 160)
            assert f.intrinsics == intrinsics_for("camera" if subset.startswith("camera") else "real", 160, 120)
            assert f.poses is not None and len(f.poses) == len(f.class_ids)
            assert set(f.class_ids.tolist()) <= {1, 2, 3, 4, 5, 6}
    g = read_gts_pkl(tmp_path / "gts/real_test/results_real_test_scene_1_0000.pkl")
    assert {"gt_class_ids", "gt_RTs", "gt_scales", "gt_bboxes", "gt_handle_visibility", "obj_list",
            "image_path"} <= set(g)
    assert np.allclose(np.linalg.norm(g["gt_scales"], axis=1), 1, atol=1e-5)
    for rel in g["obj_list"]:
        obj = tmp_path / rel
        assert obj.is_file() and obj.with_suffix(".txt").is_file()
        mpl = np.load(obj.with_name(obj.stem + "_mpl.npy"))
        assert mpl.shape == (64, 3) and np.abs(mpl).max() <= 0.5 + 1e-6


def test_check_data_passes_on_full_size_frames(tmp_path, capsys):
    # check-data insists on the NOCS image size, 640x480
    generate(_cfg(tmp_path, frames=2, width=640, height=480), progress=False)
    generate(_cfg(tmp_path, frames=1, width=640, height=480, style="real", split="test"), progress=False)
    assert cli_main(["check-data", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "3 frames checked, 0 errors" in out and "OK" in out


def test_cli_synth(tmp_path, capsys):
    rc = cli_main(["synth", str(tmp_path), "--frames", "2", "--size", "96x72", "--no-noise", "--no-progress",
                   "--models-per-category", "1", "--style", "real", "--split", "train"])
    assert rc == 0 and "wrote 2 frames" in capsys.readouterr().out
    assert (tmp_path / "Real/train/scene_1/0001_meta.txt").is_file()
    assert (tmp_path / "Real/train_list.txt").read_text().split() == ["train/scene_1/0000", "train/scene_1/0001"]
    with pytest.raises(SystemExit):
        cli_main(["synth", str(tmp_path), "--frames", "1", "--size", "big"])


def test_real_train_mug_handle_table_reaches_the_reader(tmp_path):
    from demopose.data.nocs_files import read_pickle

    cfg = _cfg(tmp_path, frames=4, style="real", split="train", frames_per_scene=3)
    generate(cfg, progress=False)
    table = read_pickle(tmp_path / "Real/train/mug_handle.pkl")
    assert sorted(table) == ["scene_1_res", "scene_2_res"]
    assert len(table["scene_1_res"]) == 3 and len(table["scene_2_res"]) == 1
    for i in range(4):
        p = frame_paths(tmp_path, "real", "train", i, frames_per_scene=3)
        g = read_gts_pkl(p.gts)
        mugs = g["gt_class_ids"] == 6
        expected = int(np.all(g["gt_handle_visibility"][mugs]))
        assert table[f"{p.stem.parent.name}_res"][i % 3] == expected
        f = load_frame(p.stem)  # with a gts pickle the reader takes the per-instance flags from it
        assert f.handle_visible.astype(bool).tolist() == g["gt_handle_visibility"].astype(bool).tolist()


def test_user_meshes_join_the_model_pool(tmp_path):
    import shutil

    from demopose.synth.generate import make_pool

    fixture = Path(__file__).parent / "fixtures" / "nocs_sample" / "obj_models" / "real_test" / "mug_daniel_norm.obj"
    (tmp_path / "mug").mkdir()
    shutil.copy(fixture, tmp_path / "mug" / "my_mug.obj")
    pool = make_pool(SynthConfig(out=str(tmp_path / "out"), frames=1, models_per_category=8,
                                 user_meshes=str(tmp_path), user_mesh_fraction=0.5))
    import trimesh

    n_faces = len(trimesh.load(fixture, force="mesh").faces)
    faces = [len(pool.get("mug", k).mesh.faces) for k in range(8)]
    assert n_faces in faces and any(f != n_faces for f in faces)  # both user and procedural mugs
    mug = next(pool.get("mug", k) for k in range(8) if len(pool.get("mug", k).mesh.faces) == n_faces)
    assert np.allclose(mug.mesh.bounds.sum(0), 0, atol=1e-6)  # canonicalised: centred on its box
    assert 0.8 * 0.9 < np.linalg.norm(mug.extents) / np.linalg.norm([0.146, 0.083, 0.114]) < 1.2 * 1.1
    with pytest.raises(FileNotFoundError, match="not a folder"):
        make_pool(SynthConfig(out=str(tmp_path / "o2"), frames=1, user_meshes=str(tmp_path / "nope")))
