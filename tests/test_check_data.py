"""check-data: passes on the fixtures, fails naming the file on corrupted copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from demopose.cli import main
from demopose.data.check import check_dataset, detect_layout
from test_data_housecat6d import write_scene

FIX = Path(__file__).parent / "fixtures" / "nocs_sample"


def _copy(tmp_path: Path) -> Path:
    """The fixtures without the large meshes (copied so they can be corrupted)."""
    root = tmp_path / "NOCS"
    for d in ("Real", "CAMERA", "gts", "camera_full_depths"):
        shutil.copytree(FIX / d, root / d)
    (root / "obj_models/real_test").mkdir(parents=True)
    for p in (FIX / "obj_models/real_test").glob("*.txt"):
        shutil.copy(p, root / "obj_models/real_test")
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


def test_fixtures_pass(capsys):
    rep = check_dataset(FIX, progress=False)
    assert rep.layout == "nocs_root" and rep.frames_checked == 2 and rep.ok, [str(p) for p in rep.errors]
    assert main(["check-data", str(FIX), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 frames checked, 0 errors" in out and out.strip().endswith("OK")
    scene = FIX / "Real/test/scene_1"
    assert detect_layout(scene) == "nocs_folder" and check_dataset(scene, progress=False).ok
    assert detect_layout(scene / "0000") == "nocs_frame"


def test_truncated_png(tmp_path, capsys):
    root = _copy(tmp_path)
    p = root / "Real/test/scene_1/0000_color.png"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    assert main(["check-data", str(root), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"ERROR   {p}: truncated PNG" in out and "FAILED" in out


def test_unknown_class_id_in_meta(tmp_path, capsys):
    root = _copy(tmp_path)
    meta = root / "CAMERA/val/00000/0000_meta.txt"
    meta.write_text(meta.read_text().replace("2 5 03642806", "2 9 03642806"))
    rep = check_dataset(root, progress=False)
    msgs = [str(e) for e in rep.errors]
    assert any(str(meta) in m and "unknown class id 9" in m for m in msgs), msgs
    assert main(["check-data", str(root), "--no-progress", "--quiet"]) == 1
    assert "unknown class id 9" in capsys.readouterr().out


def test_depth_of_wrong_size_and_encoding(tmp_path):
    root = _copy(tmp_path)
    dp = root / "Real/test/scene_1/0000_depth.png"
    cv2.imwrite(str(dp), np.zeros((240, 320), np.uint16))
    cam = root / "CAMERA/val/00000/0000_depth.png"
    cv2.imwrite(str(cam), np.full((480, 640), 500, np.uint16))  # 16 bit: wrong for CAMERA
    errs = [str(e) for e in check_dataset(root, progress=False).errors]
    assert any(str(dp) in e and "image size 320x240, expected 640x480" in e for e in errs), errs
    assert any(str(cam) in e and "wrong depth encoding for a CAMERA frame" in e for e in errs), errs


def test_missing_files_mask_ids_and_gts(tmp_path):
    root = _copy(tmp_path)
    (root / "Real/test/scene_1/0000_coord.png").unlink()
    meta = root / "Real/test/scene_1/0000_meta.txt"
    meta.write_text("\n".join(meta.read_text().splitlines()[:4]) + "\n")  # drop instance 5 (laptop)
    errs = [str(e) for e in check_dataset(root, progress=False).errors]
    assert any("0000_coord.png: missing companion file" in e for e in errs), errs
    assert any("0000_mask.png: instance id 5 occurs in the mask but not in 0000_meta.txt" in e for e in errs)
    assert any("results_real_test_scene_1_0000.pkl: 5 poses in gt_RTs but 4 annotated" in e for e in errs)


def test_housecat6d_layout(tmp_path):
    write_scene(tmp_path, "test_scene1")
    rep = check_dataset(tmp_path, progress=False)
    assert rep.layout == "housecat6d_root" and rep.frames_checked == 1 and rep.ok
    (tmp_path / "test_scene1/depth/000000.png").unlink()
    rep = check_dataset(tmp_path / "test_scene1", progress=False)
    assert rep.layout == "housecat6d_scene" and not rep.ok
    assert "depth/000000.png: missing companion file" in str(rep.errors[0])


def test_unknown_layout(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="no known dataset layout"):
        check_dataset(tmp_path)
    assert main(["check-data", str(tmp_path / "nothing")]) == 1


def test_check_data_accepts_generated_frames_of_other_sizes(tmp_path):
    from demopose.data.check import check_dataset
    from demopose.synth.generate import SynthConfig, generate

    generate(SynthConfig(out=str(tmp_path), frames=2, seed=4, style="real", split="train", width=160, height=120,
                         models_per_category=1, mpl_points=32), progress=False)
    report = check_dataset(tmp_path, progress=False)
    assert report.problems == []
