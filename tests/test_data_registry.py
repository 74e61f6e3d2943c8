"""The dataset registry: each reader declares detect / list / load / check / split and its category table;
check-data, show, predict and the engine dispatch through it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from demopose.cli import main
from demopose.data import registry
from demopose.data.check import Problem, check_dataset
from demopose.data.frame import Frame
from demopose.data.registry import DatasetReader, FrameRef, detect, get_reader, list_readers
from test_data_housecat6d import write_scene

REAL = Path(__file__).parent / "fixtures" / "nocs_sample" / "Real" / "test" / "scene_1" / "0000"
FIX = REAL.parents[3]


def _own_frames(tmp_path: Path) -> Path:
    """A folder of the user's own frames: the REAL275 fixture's colour + depth and a camera.json."""
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(f"{REAL}_color.png", own / "a_color.png")
    shutil.copy(f"{REAL}_depth.png", own / "a_depth.png")
    (own / "camera.json").write_text(json.dumps({"fx": 591.0125, "fy": 590.16775, "cx": 322.525, "cy": 244.11084,
                                                 "depth_scale": 0.001}))
    return own


def test_builtin_readers_in_detection_order():
    names = [r.name for r in list_readers()]
    assert names == ["user_frames", "housecat6d", "nocs"]
    assert [get_reader(n).categories for n in names] == [None, "housecat6d", "nocs_real"]
    with pytest.raises(ValueError, match=r"unknown dataset format 'kitti'; registered formats: \['housecat6d'"):
        get_reader("kitti")


def test_detect_every_layout(tmp_path):
    assert [detect(p)[1] for p in (REAL, f"{REAL}_color.png", REAL.parent, FIX)] == \
        ["nocs_frame", "nocs_frame", "nocs_folder", "nocs_root"]
    write_scene(tmp_path / "hc", "test_scene1")
    assert detect(tmp_path / "hc")[1] == "housecat6d_root"
    assert detect(tmp_path / "hc" / "test_scene1") == (get_reader("housecat6d"), "housecat6d_scene")
    assert detect(_own_frames(tmp_path)) == (get_reader("user_frames"), "user_frames")
    with pytest.raises(FileNotFoundError, match="no such file, folder or frame prefix"):
        detect(tmp_path / "nothing")
    with pytest.raises(ValueError, match="nocs: NOCS"):
        detect(tmp_path / "hc" / "test_scene1" / "rgb")  # a folder of images: no reader's layout


def test_listed_frames_load_with_their_names(tmp_path):
    (ref,) = get_reader("nocs").frames(REAL)
    assert (ref.name, ref.source) == ("Real_test_scene_1_0000", str(REAL))
    f = ref.load()
    assert isinstance(f, Frame) and f.poses is not None and f.categories.name == "nocs_real"
    write_scene(tmp_path / "hc", "test_scene1")
    (hc,) = get_reader("housecat6d").frames(tmp_path / "hc")
    assert hc.name == "test_scene1_000000" and hc.load().categories.name == "housecat6d"
    (own,) = get_reader("user_frames").frames(_own_frames(tmp_path))
    g = own.load()
    assert own.name == "a" and g.poses is None and g.meta["depth_scale"] == 0.001
    np.testing.assert_allclose(g.depth, f.depth, atol=1e-6)  # millimetres -> metres, as the NOCS reader
    with pytest.raises(ValueError, match="not a nocs dataset"):
        get_reader("nocs").frames(tmp_path / "hc")


def test_check_data_on_own_frames_names_the_file(tmp_path, capsys):
    own = _own_frames(tmp_path)
    rep = check_dataset(own, progress=False)
    assert rep.layout == "user_frames" and rep.frames_checked == 1 and rep.ok
    cv2.imwrite(str(own / "a_depth.png"), np.zeros((480, 640), np.uint8))  # 8-bit depth cannot hold metres
    (err,) = check_dataset(own, progress=False).errors
    assert err.path == own / "a_depth.png" and "8-bit depth" in err.message
    (own / "camera.json").write_text("{")
    assert main(["check-data", str(own), "--no-progress"]) == 1
    assert "camera.json: not valid JSON" in capsys.readouterr().out


def test_engine_opens_a_split_through_the_registry(tmp_path):
    from demopose.engine.build import build_frames

    write_scene(tmp_path, "test_scene1")
    cfg = OmegaConf.create({"data": {"root": str(tmp_path), "format": "housecat6d", "categories": "housecat6d"}})
    frames = build_frames(cfg, "test")
    assert len(frames) == 1 and frames.categories.name == "housecat6d"
    cfg.data.format = "kitti"
    with pytest.raises(ValueError, match="data.format: unknown dataset format 'kitti'"):
        build_frames(cfg, "test")
    cfg.data.format = "user_frames"
    with pytest.raises(ValueError, match="have no splits"):
        build_frames(cfg, "test")


def test_a_new_reader_is_one_registration(tmp_path, monkeypatch):
    """A reader registered by another file is found by check-data and show like the built-in ones."""
    base = get_reader("user_frames")
    (tmp_path / "toy.marker").write_text("")
    own = _own_frames(tmp_path)

    def toy_detect(p: Path):
        return "toy" if p.is_dir() and (p / "toy.marker").is_file() else None

    def toy_list(p: Path, layout: str):
        return [FrameRef("toy0", str(own), lambda: base.frames(own)[0].load())]

    def toy_check(p: Path, layout: str, categories):
        return [Problem("warning", p / "toy.marker", "a toy")], [(lambda: [], "toy0")]

    toy = DatasetReader("toy", "a toy.marker folder", None, toy_detect, toy_list, toy_check, priority=-1)
    monkeypatch.setitem(registry._READERS, "toy", toy)
    assert detect(tmp_path) == (toy, "toy")
    rep = check_dataset(tmp_path, progress=False)
    assert rep.layout == "toy" and rep.frames_checked == 1 and rep.ok and len(rep.warnings) == 1
    monkeypatch.chdir(tmp_path)
    assert main(["show", str(tmp_path), "-o", "toy.png"]) == 0 and (tmp_path / "toy.png").is_file()
