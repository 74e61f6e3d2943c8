import json
import pickle

import cv2
import numpy as np
import pytest

from demopose.io import atomic_path, write_json_atomic, write_pickle_atomic, write_png_atomic


def test_atomic_writes_round_trip(tmp_path):
    write_json_atomic(tmp_path / "a" / "m.json", {"x": np.float32(1.5), "y": np.arange(3)})
    assert json.loads((tmp_path / "a" / "m.json").read_text()) == {"x": 1.5, "y": [0, 1, 2]}
    write_pickle_atomic(tmp_path / "p.pkl", {"k": np.eye(2)})
    assert np.array_equal(pickle.loads((tmp_path / "p.pkl").read_bytes())["k"], np.eye(2))
    img = (np.arange(12, dtype=np.uint16) * 1000).reshape(3, 4)
    write_png_atomic(tmp_path / "d.png", img)
    assert np.array_equal(cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED), img)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    dest = tmp_path / "keep.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
