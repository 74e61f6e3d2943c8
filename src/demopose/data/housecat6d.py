"""HouseCat6D frames and datasets (Jung et al., CVPR 2024; Junggy/HouseCat6D, notes/depth_and_eval.md §6).

Layout::

    <root>/{scene*,val_scene*,test_scene*}/
        rgb/<id>.png               colour (1096×852 in the release)
        depth/<id>.png             uint16 millimetres
        instance/<id>.png          instance ids in channel 2 of the cv2 image (or a gray image)
        labels/<id>_label.pkl      class_ids (1-based), instance_ids, bboxes, rotations (N,3,3),
                                   translations (N,3) metres, gt_scales (N,3) metric size
        intrinsics.txt             3×3 K of the scene

Frames use the :data:`~demopose.categories.HOUSECAT6D` table. Mask value 255 (and 0) is background.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from demopose.categories import HOUSECAT6D, CategoryTable
from demopose.data.frame import Frame
from demopose.data.nocs_files import read_color, read_pickle, read_png
from demopose.data.registry import DatasetReader, FrameRef, register_reader
from demopose.geometry.camera import Intrinsics
from demopose.geometry.pose import Pose

__all__ = [
    "HouseCat6DDataset",
    "detect_housecat6d_layout",
    "is_housecat6d_scene",
    "list_housecat6d_frames",
    "load_housecat6d_frame",
    "read_housecat6d_intrinsics",
    "read_housecat6d_label",
]

_SPLIT_PREFIX = {"train": "scene", "val": "val_scene", "test": "test_scene"}


def is_housecat6d_scene(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` looks like a HouseCat6D scene (``rgb/`` and ``intrinsics.txt``)."""
    f = Path(folder)
    return (f / "rgb").is_dir() and (f / "intrinsics.txt").is_file()


def read_housecat6d_intrinsics(path: str | os.PathLike, width: int, height: int) -> Intrinsics:
    """Read a scene's ``intrinsics.txt`` (a 3×3 matrix)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found")
    try:
        K = np.loadtxt(p, dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{p}: not a table of numbers ({e})") from None
    if K.shape != (3, 3):
        raise ValueError(f"{p}: expected a 3×3 intrinsic matrix, got shape {K.shape}")
    try:
        return Intrinsics.from_matrix(K, width, height)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None


def read_housecat6d_label(path: str | os.PathLike) -> dict:
    """Read and validate ``labels/<id>_label.pkl``.

    Returns a dict with ``class_ids (N,)``, ``instance_ids (N,)`` int64, ``rotations (N, 3, 3)``,
    ``translations (N, 3)`` metres, ``gt_scales (N, 3)`` metric size, and ``bboxes (N, 4)`` when present.
    """
    p = Path(path)
    d = read_pickle(p)
    if not isinstance(d, dict):
        raise ValueError(f"{p}: expected a dict, got {type(d).__name__}")
    need = {"class_ids": (), "instance_ids": (), "rotations": (3, 3), "translations": (3,), "gt_scales": (3,)}
    for k in need:
        if k not in d:
            raise ValueError(f"{p}: key {k!r} missing (keys: {sorted(d)})")
    n = len(np.asarray(d["class_ids"]).reshape(-1))
    out = dict(d)
    for k, tail in need.items():
        dtype = np.int64 if k.endswith("ids") else np.float64
        try:
            a = np.asarray(d[k], dtype=dtype).reshape((-1, *tail))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{p}: {k!r} must be an array of numbers of shape {(n, *tail)} ({e})") from None
        if a.shape != (n, *tail):
            raise ValueError(f"{p}: {k!r} must have shape {(n, *tail)}, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{p}: {k!r} holds NaN or infinite values")
        out[k] = a
    if "bboxes" in d:
        out["bboxes"] = np.asarray(d["bboxes"]).reshape(n, -1)
    return out


def _read_instance(path: Path) -> np.ndarray:
    img = read_png(path)
    m = (img if img.ndim == 2 else img[:, :, 2]).astype(np.int32)
    m[m == 255] = 0
    return m


def load_housecat6d_frame(scene_dir: str | os.PathLike, image_id: str,
                          categories: CategoryTable | None = None) -> Frame:
    """Read one HouseCat6D frame.

    Args:
        scene_dir: the scene folder (holding ``rgb/``, ``depth/``, ...).
        image_id: the file stem, e.g. ``000000``.
        categories: the category table (default :data:`HOUSECAT6D`).

    Raises:
        FileNotFoundError / ValueError naming the file.
    """
    scene = Path(scene_dir)
    table = categories or HOUSECAT6D
    rgb = read_color(scene / "rgb" / f"{image_id}.png")
    h, w = rgb.shape[:2]
    dpath = scene / "depth" / f"{image_id}.png"
    d = read_png(dpath)
    if d.ndim != 2 or d.dtype != np.uint16:
        raise ValueError(f"{dpath}: expected 16-bit single-channel depth in millimetres, got {d.dtype} {d.shape}")
    depth = d.astype(np.float32) / 1000.0
    ipath = scene / "instance" / f"{image_id}.png"
    inst_map = _read_instance(ipath)
    for name, a in ((dpath, depth), (ipath, inst_map)):
        if a.shape != (h, w):
            raise ValueError(f"{name}: size {a.shape[1]}x{a.shape[0]} differs from the colour image {w}x{h}")
    K = read_housecat6d_intrinsics(scene / "intrinsics.txt", w, h)
    lpath = scene / "labels" / f"{image_id}_label.pkl"
    lab = read_housecat6d_label(lpath)
    present = set(np.unique(inst_map).tolist())
    poses, ids, cls = [], [], []
    for i in np.argsort(lab["instance_ids"], kind="stable"):
        c, iid = int(lab["class_ids"][i]), int(lab["instance_ids"][i])
        if c not in table:
            raise ValueError(f"{lpath}: class id {c} unknown to the category table {table.name} "
                             f"(valid: {table.ids})")
        if iid not in present:
            continue
        ids.append(iid)
        cls.append(c)
        poses.append(Pose(lab["rotations"][i], lab["translations"][i], lab["gt_scales"][i], class_id=c))
    return Frame(rgb=rgb, depth=depth, intrinsics=K, instance_map=inst_map, instance_ids=np.array(ids),
                 class_ids=np.array(cls), categories=table, poses=poses,
                 frame_id=f"{scene.name}/{image_id}", source=scene / "rgb" / image_id,
                 meta={"kind": "housecat6d", "scene": scene.name, "image_id": image_id,
                       "label_path": str(lpath)})


def list_housecat6d_frames(scene_dir: str | os.PathLike) -> list[str]:
    """Sorted image ids (``rgb/*.png`` stems) of a scene."""
    return sorted(p.stem for p in (Path(scene_dir) / "rgb").glob("*.png"))


class HouseCat6DDataset:
    """HouseCat6D scenes as a sequence of :class:`Frame`.

    Args:
        root: the dataset root holding the scene folders, or one scene folder.
        split: ``train`` (``scene*``), ``val`` (``val_scene*``), ``test`` (``test_scene*``) or None
            for every scene folder under ``root``.
        categories: category table (default :data:`HOUSECAT6D`).
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None,
                 categories: CategoryTable | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: folder not found")
        if split is not None and split not in _SPLIT_PREFIX:
            raise ValueError(f"split: expected one of {sorted(_SPLIT_PREFIX)} or None, got {split!r}")
        self.categories = categories or HOUSECAT6D
        if is_housecat6d_scene(self.root):
            scenes = [self.root]
        else:
            scenes = sorted(p for p in self.root.iterdir() if p.is_dir() and is_housecat6d_scene(p))
            if split is not None:
                pre = _SPLIT_PREFIX[split]
                scenes = [s for s in scenes if s.name.startswith(pre) and
                          (split != "train" or not s.name.startswith(("val_", "test_")))]
        self.frames = [(s, i) for s in scenes for i in list_housecat6d_frames(s)]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Frame:
        if not -len(self) <= index < len(self):
            raise IndexError(f"HouseCat6DDataset index {index} out of range (0..{len(self) - 1})")
        scene, image_id = self.frames[index]
        return load_housecat6d_frame(scene, image_id, self.categories)


# --------------------------------------------------------------------------------------------------
# the dataset registry entry (demopose.data.registry)
# --------------------------------------------------------------------------------------------------


def detect_housecat6d_layout(path: Path) -> str | None:
    """``housecat6d_scene`` (``rgb/`` and ``intrinsics.txt``), ``housecat6d_root`` (a folder of such scenes), or
    None."""
    if not path.is_dir():
        return None
    if is_housecat6d_scene(path):
        return "housecat6d_scene"
    if any(is_housecat6d_scene(c) for c in path.iterdir() if c.is_dir()):
        return "housecat6d_root"
    return None


def _list_housecat6d(path: Path, layout: str) -> list[FrameRef]:
    """Every frame of the scene, or of every scene of the root."""
    frames = HouseCat6DDataset(path).frames
    return [FrameRef(f"{s.name}_{i}", str(s / "rgb" / f"{i}.png"), functools.partial(load_housecat6d_frame, s, i))
            for s, i in frames]


def _check_housecat6d(path: Path, layout: str, categories: CategoryTable | None):
    from demopose.data.check import plan_housecat6d_checks

    return plan_housecat6d_checks(path, layout, categories)


def _open_housecat6d_split(root: Path, subset: str, categories: CategoryTable | None) -> HouseCat6DDataset:
    return HouseCat6DDataset(root, subset, categories)


register_reader(DatasetReader(
    name="housecat6d", description="HouseCat6D scene folders with rgb/ and intrinsics.txt, or their root",
    categories="housecat6d", detect=detect_housecat6d_layout, list_frames=_list_housecat6d,
    check=_check_housecat6d, open_split=_open_housecat6d_split, priority=10))
