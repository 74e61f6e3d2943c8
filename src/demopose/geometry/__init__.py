"""Geometry shared by every method: rotations, poses, boxes, cameras, alignment, symmetry.

Pure functions over torch tensors or NumPy arrays; see each module's ``Convention`` note.
"""

from demopose.geometry.align import robust_umeyama, umeyama
from demopose.geometry.box3d import (
    BOX_CORNER_SIGNS,
    BOX_EDGES,
    box_corners,
    box_corners_in_camera,
    transform_points,
)
from demopose.geometry.camera import (
    CAMERA_INTRINSICS,
    REAL_INTRINSICS,
    Intrinsics,
    backproject_pixels,
    depth_to_points,
    project_points,
)
from demopose.geometry.pose import Pose, PoseSet, pose_from_nocs, pose_to_matrix, pose_to_nocs
from demopose.geometry.rotation import (
    axis_angle_to_rotation_matrix,
    euler_xyz_to_rotation_matrix,
    orthonormalize,
    quaternion_to_rotation_matrix,
    random_rotation,
    rectify_vectors,
    rotation_6d_to_matrix,
    rotation_6d_y_to_matrix,
    rotation_about_axis,
    rotation_angle_deg,
    rotation_from_vectors,
    rotation_matrix_to_6d,
    rotation_matrix_to_axis_angle,
    rotation_matrix_to_quaternion,
    vectors_to_rotation,
    y_axis_angle_deg,
)
from demopose.geometry.symmetry import canonicalize_y_symmetric, y_symmetric_candidates

__all__ = [
    "BOX_CORNER_SIGNS",
    "BOX_EDGES",
    "CAMERA_INTRINSICS",
    "Intrinsics",
    "Pose",
    "PoseSet",
    "REAL_INTRINSICS",
    "axis_angle_to_rotation_matrix",
    "backproject_pixels",
    "box_corners",
    "box_corners_in_camera",
    "canonicalize_y_symmetric",
    "depth_to_points",
    "euler_xyz_to_rotation_matrix",
    "orthonormalize",
    "pose_from_nocs",
    "pose_to_matrix",
    "pose_to_nocs",
    "project_points",
    "quaternion_to_rotation_matrix",
    "random_rotation",
    "rectify_vectors",
    "robust_umeyama",
    "rotation_6d_to_matrix",
    "rotation_6d_y_to_matrix",
    "rotation_about_axis",
    "rotation_angle_deg",
    "rotation_from_vectors",
    "rotation_matrix_to_6d",
    "rotation_matrix_to_axis_angle",
    "rotation_matrix_to_quaternion",
    "transform_points",
    "umeyama",
    "vectors_to_rotation",
    "y_axis_angle_deg",
    "y_symmetric_candidates",
]
