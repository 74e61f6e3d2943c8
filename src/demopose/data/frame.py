"""The typed frame record every reader produces and every stage consumes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from demopose.categories import CategoryTable
from demopose.geometry.camera import Intrinsics
from demopose.geometry.pose import Pose, PoseSet

__all__ = ["Frame", "FrameSubset"]


@dataclass
class Frame:
    """One RGB-D frame with its annotations.

    Attributes:
        rgb: ``(H, W, 3)`` uint8, RGB order.
        depth: ``(H, W)`` float32 depth in metres along z; 0 where there is no measurement.
        intrinsics: the pinhole camera.
        instance_map: ``(H, W)`` int32 instance id per pixel, 0 = background (the NOCS files store 255
            for background; readers convert).
        instance_ids: ``(N,)`` ids of the annotated instances (values of ``instance_map``), in the order
            of every per-instance field below. Only instances of a known category (class id >= 1) that
            are visible in the mask are listed.
        class_ids: ``(N,)`` 1-based category ids in ``categories``.
        categories: the dataset's category table.
        poses: ``N`` ground-truth poses, or None when the source carries none.
        handle_visible: ``(N,)`` bool mug-handle visibility (True where unknown or not a mug).
        model_names: ``N`` mesh names (REAL ``bowl_white_small_norm``; CAMERA ``synset/model_id``).
        nocs: ``(H, W, 3)`` float32 NOCS coordinates in [-0.5, 0.5] (object frame / diagonal), NaN where
            no object; None when the source has no coordinate map.
        frame_id: a stable identifier, e.g. ``Real/test/scene_1/0000``.
        source: the path prefix the frame was read from (``.../0000``), if any.
        meta: free-form reader-specific extras.
    """

    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: Intrinsics
    instance_map: np.ndarray
    instance_ids: np.ndarray
    class_ids: np.ndarray
    categories: CategoryTable
    poses: list[Pose] | None = None
    handle_visible: np.ndarray | None = None
    model_names: list[str] = field(default_factory=list)
    nocs: np.ndarray | None = None
    frame_id: str = ""
    source: Path | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.instance_ids = np.asarray(self.instance_ids, dtype=np.int64).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if self.handle_visible is None:
            self.handle_visible = np.ones(len(self.instance_ids), dtype=bool)

    @property
    def K(self) -> np.ndarray:
        """``(3, 3)`` intrinsic matrix."""
        return self.intrinsics.K

    @property
    def height(self) -> int:
        return int(self.depth.shape[0])

    @property
    def width(self) -> int:
        return int(self.depth.shape[1])

    def __len__(self) -> int:
        return len(self.instance_ids)

    def masks(self) -> np.ndarray:
        """``(N, H, W)`` bool mask of each annotated instance."""
        return self.instance_map[None] == self.instance_ids[:, None, None]

    def ground_truth(self) -> PoseSet:
        """The annotated poses as a :class:`PoseSet` (raises if the frame has none)."""
        if self.poses is None:
            raise ValueError(f"frame {self.frame_id or self.source}: has no ground-truth poses")
        ps = PoseSet.from_poses(self.poses, self.handle_visible)
        if len(ps) == 0:
            return PoseSet.empty()
        return ps


class FrameSubset:
    """A lazy view of some frames of a frame dataset: ``subset[i] = frames[indices[i]]`` (nothing is loaded
    until indexed); e.g. ``FrameSubset(frames, engine.build.limit_frames(len(frames), 30))``."""

    def __init__(self, frames: Sequence[Frame], indices: Sequence[int]) -> None:
        self.frames, self.indices = frames, [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Frame:
        return self.frames[self.indices[i]]
