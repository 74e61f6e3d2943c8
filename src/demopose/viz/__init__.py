"""Visualisation: drawing poses, masks and contact sheets on RGB images."""

from demopose.viz.draw import (
    PALETTE,
    class_color,
    contact_sheet,
    draw_axes,
    draw_box,
    draw_frame,
    draw_label,
    draw_pose,
    draw_pose_set,
    draw_predictions_and_gt,
    overlay_masks,
    pose_overlay,
)

__all__ = [
    "PALETTE",
    "class_color",
    "contact_sheet",
    "draw_axes",
    "draw_box",
    "draw_frame",
    "draw_label",
    "draw_pose",
    "draw_pose_set",
    "draw_predictions_and_gt",
    "overlay_masks",
    "pose_overlay",
]
