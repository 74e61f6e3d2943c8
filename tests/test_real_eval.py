"""Real-frame evaluation on the existing commands: `demopose test` on the REAL275 fixture folder prints every
ground-truth object's errors and writes the overlays of `demopose predict` (issue #21 item 2)."""

import json
from pathlib import Path

import cv2
import pytest

from demopose.cli import main
from demopose.data.nocs import NOCSDataset
from demopose.predictor import BUNDLED_CHECKPOINT

FIX = Path(__file__).parent / "fixtures" / "nocs_sample"
CATEGORIES = {"bowl", "can", "camera", "mug", "laptop"}  # the 5 objects of Real/test/scene_1/0000


def _table_rows(text: str, frame: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.startswith(frame)]


def test_test_on_the_real_fixture_frame(tmp_path, capsys):
    """The bundled model with ground-truth masks on the one real frame: a table row per object (frame, category,
    errors, within 10°/5 cm and 5°/5 cm, found), the counts, and one overlay picture."""
    out = tmp_path / "real"
    assert main(["test", "demopose_synth_small", str(BUNDLED_CHECKPOINT), str(FIX), "eval.masks=gt", "--out", str(out),
                 "--overlays", "3", "--no-progress", "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "per-object errors" in text and "≤10°/5cm" in text and "≤5°/5cm" in text
    rows = _table_rows(text, "Real/test/scene_1/0000")
    assert {r[1] for r in rows} == CATEGORIES and len(rows) == 5
    assert all(r[-1] == "found" and r[-2] in ("yes", "no") and r[-3] in ("yes", "no") for r in rows)
    assert "10°/5 cm:" in text and "5°/5 cm:" in text
    objects = json.loads((out / "objects.json").read_text())
    within = objects["summary"]["within"]
    assert sum(r[-3] == "yes" for r in rows) == within["10deg5cm"]  # the table agrees with the tally
    assert sum(r[-2] == "yes" for r in rows) == within["5deg5cm"]
    overlays = sorted((out / "overlays").glob("*.png"))
    assert [p.name for p in overlays] == ["Real_test_scene_1_0000_overlay.png"]  # 3 asked, the split has 1 frame
    img = cv2.imread(str(overlays[0]))
    assert img.shape == (480, 640, 3)
    assert "wrote 1 overlay picture(s)" in text


def test_test_on_the_camera_subset_and_without_table(tmp_path, capsys, monkeypatch):
    """The CAMERA25 val frame through data.test_subset; above the frame limit the table needs --per-object."""
    import demopose.cli.test as test_cli

    monkeypatch.setattr(test_cli, "PER_OBJECT_FRAMES", 0)
    common = ["test", "demopose_synth_small", str(BUNDLED_CHECKPOINT), str(FIX), "eval.masks=gt",
              "data.test_subset=camera_val", "--no-progress", "--no-plots", "data.n_points=256"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert "per-object errors" not in text and "--per-object prints them" in text
    assert main([*common, "--out", str(tmp_path / "b"), "--per-object"]) == 0
    rows = _table_rows(capsys.readouterr().out, "CAMERA/val/00000/0000")
    assert [r[1] for r in rows] == ["laptop", "laptop"]
    assert not (tmp_path / "b" / "overlays").exists()  # no --overlays: no pictures


def test_missing_split_names_what_exists(tmp_path):
    with pytest.raises(FileNotFoundError, match="subsets under this root: real_test, camera_val"):
        NOCSDataset(FIX, "real_val")
    with pytest.raises(FileNotFoundError, match=f"the dataset root is the folder holding Real/: {FIX}"):
        NOCSDataset(FIX / "Real" / "test", "real_test")
