"""Drawing functions and the show command."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from demopose.cli import main
from demopose.geometry import PoseSet, box_corners_in_camera, project_points
from demopose.viz import (
    class_color,
    contact_sheet,
    draw_axes,
    draw_box,
    draw_pose_set,
    draw_predictions_and_gt,
    overlay_masks,
    pose_overlay,
)

FIX = Path(__file__).parent / "fixtures" / "nocs_sample"
K = np.array([[500.0, 0, 160], [0, 500, 120], [0, 0, 1]])
BLANK = np.zeros((240, 320, 3), np.uint8)


def _one(class_id=6, t=(0.0, 0.0, 1.0), score=0.8):
    return PoseSet(np.array([class_id]), np.eye(3)[None], np.array([t]), np.array([[0.2, 0.1, 0.15]]),
                   np.array([score]))


def test_box_edges_drawn_at_projected_corners():
    ps = _one()
    img = draw_pose_set(BLANK, ps, K, labels=False, axes=False)
    assert BLANK.max() == 0  # input untouched
    uv = project_points(box_corners_in_camera(ps.R[0], ps.t[0], ps.size[0]), K)
    col = np.array(class_color(6))
    for u, v in np.round(uv).astype(int):
        assert np.abs(img[v, u].astype(int) - col).max() < 60  # every corner is on a drawn edge
    assert img[120, 160].max() == 0  # box centre stays empty without axes


def test_axes_colours():
    img = draw_axes(BLANK, np.eye(3), np.array([0, 0, 1.0]), K, length=0.1)
    # x axis goes right from the centre (red), y goes down (green) in the OpenCV camera frame.
    assert tuple(img[120, 190]) == (255, 0, 0)
    assert tuple(img[150, 160]) == (0, 255, 0)


def test_box_checks_and_dashed():
    with pytest.raises(ValueError, match="corners_2d"):
        draw_box(BLANK, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="uint8"):
        draw_box(BLANK.astype(np.float32), np.zeros((8, 2)))
    ps = _one()
    solid = draw_pose_set(BLANK, ps, K, labels=False, axes=False)
    dashed = draw_pose_set(BLANK, ps, K, labels=False, axes=False, dashed=True)
    assert 0 < (dashed.max(-1) > 0).sum() < (solid.max(-1) > 0).sum()


def test_predictions_and_gt_and_behind_camera():
    gt = _one(t=(0.05, 0, 1.0))
    pred = PoseSet.from_poses(_one(score=0.9).poses() + _one(t=(0, 0, -1.0), score=0.9).poses()
                              + _one(t=(-0.1, 0, 1.0), score=0.1).poses())
    img = draw_predictions_and_gt(BLANK, pred, gt, K, min_score=0.5)
    white = np.all(img == 255, -1).sum()
    assert white > 0  # dashed white ground truth
    low = draw_predictions_and_gt(BLANK, pred, gt, K, min_score=0.0)
    assert (low.max(-1) > 0).sum() > (img.max(-1) > 0).sum()  # the low-score box appears


def test_pose_overlay_masks_and_legend():
    """The picture of `demopose predict` / `demopose test --overlays`: tinted masks, boxes, a legend with ground
    truth only."""
    gt, pred = _one(t=(0.05, 0, 1.0)), _one(score=0.9)
    m = np.zeros((1, 240, 320), bool)
    m[0, 5:15, 5:15] = True
    img = pose_overlay(BLANK, pred, gt, K, masks=m)
    assert img[10, 10].any() and img.shape == BLANK.shape
    assert img[225:240, :40].any()  # the legend in the bottom-left corner
    assert not pose_overlay(BLANK, pred, None, K)[225:240, :40].any()  # no ground truth: no legend
    assert np.array_equal(pose_overlay(BLANK, pred, gt, K, masks=np.zeros((0, 240, 320), bool)),
                          pose_overlay(BLANK, pred, gt, K))


def test_overlay_and_contact_sheet():
    m = np.zeros((1, 240, 320), bool)
    m[0, 10:20, 10:20] = True
    ov = overlay_masks(BLANK, m, [(0, 0, 255)], alpha=0.5)
    assert tuple(ov[15, 15]) == (0, 0, 128) and ov[100, 100].max() == 0
    sheet = contact_sheet([BLANK, BLANK + 50, BLANK], ["a", "b", "c"], tile_width=160)
    assert sheet.dtype == np.uint8 and sheet.shape == (2 * (120 + 22) + 3 * 4, 2 * 160 + 3 * 4, 3)
    with pytest.raises(ValueError, match="captions"):
        contact_sheet([BLANK], ["a", "b"])


def test_show_frame_and_folder(tmp_path, capsys):
    out = tmp_path / "real.png"
    assert main(["show", str(FIX / "Real/test/scene_1/0000_color.png"), "-o", str(out)]) == 0
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img.shape == (480, 640, 3)
    src = cv2.imread(str(FIX / "Real/test/scene_1/0000_color.png"))
    assert np.abs(img.astype(int) - src).max() > 100  # something was drawn
    sheet = tmp_path / "sheet.png"
    assert main(["show", str(FIX), "-o", str(sheet), "--max-frames", "4"]) == 0
    assert "2 frames" in capsys.readouterr().out
    assert cv2.imread(str(sheet)).shape[1] == 2 * 480 + 3 * 4
    assert main(["show", str(tmp_path / "missing" / "0000")]) == 1
