"""Your own RGB-D frames: a folder of colour + depth PNGs with a ``camera.json``.

Layout (any one of these pairings; names are matched by their stem)::

    my_frames/
      camera.json                 {"fx": 591.0, "fy": 590.2, "cx": 322.5, "cy": 244.1, "depth_scale": 0.001}
      0001_color.png  0001_depth.png      (NOCS-style suffixes)
      color/0001.png  depth/0001.png      (or rgb/ + depth/ sub-folders)

``camera.json`` fields: the intrinsics as ``fx, fy, cx, cy`` (pixels) or ``K`` (3×3 rows); ``depth_scale``:
metres per depth-PNG unit (0.001 for millimetre PNGs, the default); optional ``width``/``height`` of the
images the intrinsics belong to (checked against the images).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from demopose.data.registry import DatasetReader, FrameRef, register_reader

if TYPE_CHECKING:
    from demopose.data.frame import Frame

__all__ = ["CameraFile", "UserFrame", "detect_user_frames_layout", "list_user_frames", "load_user_frame",
           "read_camera_json", "read_user_frame"]


@dataclass(frozen=True)
class CameraFile:
    """Parsed ``camera.json``: ``K (3, 3)``, ``depth_scale`` (metres per unit), optional image size."""

    K: np.ndarray
    depth_scale: float
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class UserFrame:
    """One colour/depth pair of a user folder."""

    name: str
    color: Path
    depth: Path


def read_camera_json(path: str | os.PathLike) -> CameraFile:
    """Read and check a ``camera.json`` (module docstring); errors name the file and the field."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: camera.json not found (it gives the intrinsics and the depth scale: "
                                f'{{"fx": .., "fy": .., "cx": .., "cy": .., "depth_scale": 0.001}})')
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{p}: expected a JSON object")
    if "K" in d:
        rows = d["K"]
        if not (isinstance(rows, list) and len(rows) == 3
                and all(isinstance(r, list) and len(r) == 3 and all(_is_number(v) for v in r) for r in rows)):
            raise ValueError(f"{p}: field 'K' must be 3 rows of 3 numbers, got {json.dumps(rows)[:80]}")
        K = np.asarray(rows, dtype=np.float64)
    else:
        missing = [k for k in ("fx", "fy", "cx", "cy") if k not in d]
        if missing:
            raise ValueError(f"{p}: missing field(s) {missing}; give fx, fy, cx, cy (pixels) or K")
        fx, fy, cx, cy = (_number(d, k, p) for k in ("fx", "fy", "cx", "cy"))
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    if not np.all(np.isfinite(K)):
        raise ValueError(f"{p}: the intrinsics hold NaN or infinite values: {K.tolist()}")
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ValueError(f"{p}: focal lengths must be positive pixels, got fx={K[0, 0]}, fy={K[1, 1]}")
    scale = _number(d, "depth_scale", p, default=0.001, what="metres per depth unit")
    if not 1e-5 <= scale <= 1.0:
        raise ValueError(f"{p}: field 'depth_scale' = {scale} is not metres per unit (0.001 for millimetres)")
    size = []
    for k in ("width", "height"):
        v = d.get(k)
        if v is not None and not (_is_number(v) and float(v) == int(v) and int(v) > 0):
            raise ValueError(f"{p}: field {k!r} must be a positive whole number of pixels, got {json.dumps(v)}")
        size.append(int(v) if v is not None else None)
    return CameraFile(K, scale, size[0], size[1])


def _is_number(v: object) -> bool:
    """A JSON number (not a boolean, string or null)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(d: dict, key: str, path: Path, default: float | None = None, what: str = "pixels") -> float:
    v = d.get(key, default)
    if not _is_number(v):
        raise ValueError(f"{path}: field {key!r} must be a number ({what}), got {json.dumps(v)}")
    return float(v)


def list_user_frames(folder: str | os.PathLike) -> list[UserFrame]:
    """The colour/depth pairs of a folder, sorted by name (module docstring)."""
    root = Path(folder)
    pairs: list[UserFrame] = []
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    for c in sorted(root.glob("*_color.png")):
        stem = c.name[: -len("_color.png")]
        d = root / f"{stem}_depth.png"
        if d.is_file():
            pairs.append(UserFrame(stem, c, d))
    for sub in ("color", "rgb"):
        if (root / sub).is_dir() and (root / "depth").is_dir():
            for c in sorted((root / sub).glob("*.png")) + sorted((root / sub).glob("*.jpg")):
                d = root / "depth" / f"{c.stem}.png"
                if d.is_file():
                    pairs.append(UserFrame(c.stem, c, d))
    if not pairs:
        raise FileNotFoundError(f"{root}: no colour/depth pairs (expected NAME_color.png + NAME_depth.png, or "
                                f"color/NAME.png + depth/NAME.png)")
    return pairs


def read_user_frame(frame: UserFrame, camera: CameraFile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rgb (H, W, 3) uint8, depth (H, W) float32 metres, K)`` of a pair; checks sizes against the camera."""
    import cv2

    bgr = cv2.imread(str(frame.color), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{frame.color}: not a readable image")
    raw = cv2.imread(str(frame.depth), cv2.IMREAD_ANYDEPTH)
    if raw is None:
        raise ValueError(f"{frame.depth}: not a readable depth image")
    if raw.ndim != 2 or raw.dtype not in (np.uint16, np.uint8, np.float32):
        raise ValueError(f"{frame.depth}: expected a single-channel 16-bit depth PNG, got {raw.dtype} {raw.shape}")
    if raw.dtype == np.uint8:
        raise ValueError(f"{frame.depth}: 8-bit depth cannot hold metric depth; save depth as 16-bit PNG")
    if raw.shape != bgr.shape[:2]:
        raise ValueError(f"{frame.depth}: size {raw.shape[1]}x{raw.shape[0]} differs from {frame.color}'s "
                         f"{bgr.shape[1]}x{bgr.shape[0]} (depth must be registered to the colour image)")
    H, W = raw.shape
    if camera.width is not None and camera.height is not None and (camera.width, camera.height) != (W, H):
        raise ValueError(f"{frame.color}: image is {W}x{H} but camera.json gives width/height "
                         f"{camera.width}x{camera.height}")
    depth = np.multiply(raw, np.float32(camera.depth_scale), dtype=np.float32)  # one pass: convert and scale
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), depth, camera.K


# --------------------------------------------------------------------------------------------------
# the dataset registry entry (demopose.data.registry)
# --------------------------------------------------------------------------------------------------


def detect_user_frames_layout(path: Path) -> str | None:
    """``user_frames`` for a folder with a ``camera.json``, else None."""
    return "user_frames" if path.is_dir() and (path / "camera.json").is_file() else None


def load_user_frame(frame: UserFrame, camera: CameraFile) -> Frame:
    """A pair as a :class:`~demopose.data.frame.Frame` without annotations (depth in metres, :func:`read_user_frame`;
    ``meta["depth_scale"]`` the camera's)."""
    from demopose.categories import NOCS_REAL
    from demopose.data.frame import Frame
    from demopose.geometry.camera import Intrinsics

    rgb, depth, K = read_user_frame(frame, camera)
    H, W = depth.shape
    return Frame(rgb=rgb, depth=depth, intrinsics=Intrinsics.from_matrix(K, W, H),
                 instance_map=np.zeros((H, W), np.int32), instance_ids=np.zeros(0, np.int64),
                 class_ids=np.zeros(0, np.int64), categories=NOCS_REAL, frame_id=frame.name, source=frame.color,
                 meta={"kind": "user_frames", "depth_scale": camera.depth_scale})


def _list_user_frames(path: Path, layout: str) -> list[FrameRef]:
    """Every colour/depth pair, with the folder's ``camera.json`` (read once, here)."""
    cam_file = path / "camera.json"
    cam = read_camera_json(cam_file)
    return [FrameRef(uf.name, f"{uf.depth} (depth_scale from {cam_file})", functools.partial(load_user_frame, uf, cam))
            for uf in list_user_frames(path)]


def _check_user_frames(path: Path, layout: str, categories):
    from demopose.data.check import plan_user_frames_checks

    return plan_user_frames_checks(path, layout, categories)


register_reader(DatasetReader(
    name="user_frames", description="a folder of colour + depth PNGs with a camera.json", categories=None,
    detect=detect_user_frames_layout, list_frames=_list_user_frames, check=_check_user_frames, priority=0))
