"""Per-object errors and the "objects within 10°/5 cm" tally on a hand-built frame."""

import numpy as np

from demopose.categories import get_table
from demopose.evaluation.object_hits import ObjectTally, object_errors
from demopose.geometry import PoseSet
from demopose.geometry.rotation import rotation_about_axis

TABLE = get_table("nocs_real")
ID = {c.name: i + 1 for i, c in enumerate(TABLE.categories)}


def _rot(deg: float, axis: str) -> np.ndarray:
    return rotation_about_axis(np.array(np.deg2rad(deg)), axis)


def _frame():
    names = ["bottle", "mug", "laptop", "mug"]
    gt = PoseSet([ID[n] for n in names], np.stack([np.eye(3)] * 4),
                 [[0, 0, 1.0], [0.2, 0, 1.0], [-0.3, 0, 1.2], [0.5, 0.1, 0.9]], np.full((4, 3), 0.1),
                 handle_visible=[True, True, True, False])
    # bottle: 40° about y (free for a bottle) and 3 cm off; mug 1: 7° about x, 1 cm off; laptop: no prediction
    # of its class (a camera nearby instead); mug 2 (handle hidden): 30° about y (free), 8° about x, 4 cm off;
    # a far second bottle prediction is never the nearest
    pred = PoseSet([ID["bottle"], ID["mug"], ID["camera"], ID["mug"], ID["bottle"]],
                   np.stack([_rot(40, "y"), _rot(7, "x"), np.eye(3), _rot(8, "x") @ _rot(30, "y"), _rot(90, "x")]),
                   [[0.03, 0, 1.0], [0.21, 0, 1.0], [-0.3, 0, 1.2], [0.5, 0.14, 0.9], [1.0, 1.0, 2.0]],
                   np.full((5, 3), 0.1), scores=[0.9, 0.8, 0.7, 0.6, 0.5])
    return pred, gt


def test_object_errors_nearest_same_class_with_symmetry():
    pred, gt = _frame()
    rows = object_errors(pred, gt, TABLE)
    assert [r["found"] for r in rows] == [True, True, False, True]
    assert rows[0]["pred_index"] == 0 and rows[0]["rotation_deg"] < 1e-3 and rows[0]["translation_cm"] == 3.0
    assert abs(rows[1]["rotation_deg"] - 7.0) < 1e-2 and rows[1]["translation_cm"] == 1.0
    assert rows[1]["y_symmetric"] is False and rows[3]["y_symmetric"] is True
    assert abs(rows[3]["rotation_deg"] - 8.0) < 1e-2 and rows[3]["translation_cm"] == 4.0


def test_tally_counts_and_summary():
    pred, gt = _frame()
    tally = ObjectTally(TABLE)
    tally.add(pred, gt, "f0")
    s = tally.summary()
    assert s["objects"] == 4 and s["found"] == 3
    assert s["within"] == {"5deg2cm": 0, "5deg5cm": 1, "10deg2cm": 1, "10deg5cm": 3, "10deg10cm": 3}
    assert s["fraction"]["10deg5cm"] == 0.75
    assert s["per_category"]["mug"] == {"objects": 2, "found": 2,
                                        "within": {"5deg2cm": 0, "5deg5cm": 0, "10deg2cm": 1, "10deg5cm": 2,
                                                   "10deg10cm": 2}}
    assert "3/4 (75.0 %)" in tally.format()
    assert ObjectTally(TABLE).summary()["fraction"]["10deg5cm"] is None


def test_per_object_table():
    pred, gt = _frame()
    tally = ObjectTally(TABLE)
    tally.add(pred, gt, "scene/0000")
    lines = tally.format_rows().splitlines()
    assert "≤10°/5cm" in lines[1] and "≤5°/5cm" in lines[1]
    rows = [line.split() for line in lines[2:]]
    assert [r[1] for r in rows] == ["bottle", "mug", "laptop", "mug"]
    assert rows[0][2:] == ["0.0*", "3.0", "yes", "yes", "found"]  # y-symmetric: the * mark
    assert rows[1][2:] == ["7.0", "1.0", "yes", "no", "found"]
    assert rows[2][2:] == ["-", "-", "no", "no", "missed"]
    assert rows[3][2:] == ["8.0*", "4.0", "yes", "no", "found"]
