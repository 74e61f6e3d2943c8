"""NOCS CAMERA25 / REAL275 frames and datasets, read from the original layout.

Layout (notes/depth_and_eval.md §5.1)::

    <root>/CAMERA/{train,val}/<5-digit scene>/<4-digit id>_{color,coord,depth,mask}.png, _meta.txt
    <root>/camera_full_depths/{train,val}/<scene>/<id>_composed.png
    <root>/Real/{train,test}/scene_<k>/<id>_{color,coord,depth,mask}.png, _meta.txt
    <root>/gts/{val,real_test}/results_{val_<scene>|real_test_scene_<k>}_<id>.pkl
    <root>/obj_models/...                      (see demopose.data.obj_models)
    <root>/{Real,CAMERA}/<split>_list.txt       (optional SPD split lists, lines like test/scene_1/0000)

Annotated instances are the meta lines with a class id of the category table (1..6 for NOCS) whose
instance id occurs in the mask, in ascending instance id (the order of the ``gts`` pickles); class 0
distractors are excluded. Poses come from the ``gts`` pickle when there is one (CAMERA val, REAL test),
otherwise (CAMERA train, REAL train) they are recovered from the coordinate map and the depth by a
RANSAC Umeyama fit, as SPD does (mentian/object-deformnet ``preprocess/pose_data.py`` with
``align_nocs_to_depth``): with the REAL scale fixed to the metric diagonal ``‖extents‖`` of the model,
and estimated for CAMERA. Sizes: CAMERA pickles ``gt_scales · s``; REAL the ``<name>_norm.txt``
extents; otherwise ``bbox.txt`` extents · s, or as a last resort the NOCS-map extents · s.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demopose.categories import NOCS_REAL, CategoryTable
from demopose.data.frame import Frame
from demopose.data.nocs_files import (
    MetaEntry,
    read_color,
    read_coord,
    read_depth,
    read_gts_pkl,
    read_mask,
    read_meta,
    read_pickle,
)
from demopose.data.obj_models import camera_model_dir, read_bbox_txt, read_extents_txt, real_model_file
from demopose.data.registry import DatasetReader, FrameRef, register_reader
from demopose.geometry.align import robust_umeyama
from demopose.geometry.camera import CAMERA_INTRINSICS, REAL_INTRINSICS, depth_to_points
from demopose.geometry.pose import Pose, pose_from_nocs

__all__ = [
    "NOCSDataset",
    "NOCSFramePath",
    "SUBSETS",
    "annotated_instances",
    "detect_nocs_layout",
    "list_frames",
    "load_frame",
    "parse_frame_path",
    "read_split_list",
    "recover_pose_from_nocs",
]

log = logging.getLogger(__name__)

SUBSETS: dict[str, tuple[str, str]] = {
    "real_test": ("Real", "test"),
    "real_train": ("Real", "train"),
    "camera_val": ("CAMERA", "val"),
    "camera_train": ("CAMERA", "train"),
}
"""Subset name -> (top folder, split folder)."""

_FILE_RE = re.compile(r"^(\d+)_(color|coord|depth|mask|meta|label)\.(png|txt|pkl)$")
MIN_POSE_POINTS = 64
"""Fewest valid depth pixels for recovering a pose from the NOCS map (SPD skips smaller instances)."""


@dataclass(frozen=True)
class NOCSFramePath:
    """Where one NOCS frame's files are.

    Attributes:
        prefix: the path prefix, e.g. ``<root>/Real/test/scene_1/0000``.
        kind: ``"real"`` or ``"camera"``.
        split: ``train``/``val``/``test`` (the folder name; may be anything for loose folders).
        scene: ``scene_1`` or ``00000``.
        image_id: ``0000``.
        root: the dataset root (parent of ``Real``/``CAMERA``), or None when the frame is not inside
            the standard layout (then gts pickles, composed depths and models are not looked up).
    """

    prefix: Path
    kind: str
    split: str
    scene: str
    image_id: str
    root: Path | None

    def file(self, suffix: str) -> Path:
        """``<prefix>_<suffix>``, e.g. ``file("color.png")``."""
        return Path(f"{self.prefix}_{suffix}")

    @property
    def frame_id(self) -> str:
        top = "Real" if self.kind == "real" else "CAMERA"
        return f"{top}/{self.split}/{self.scene}/{self.image_id}"

    def gts_path(self) -> Path | None:
        """The NOCS ground-truth pickle of this frame (CAMERA val / REAL test), or None."""
        if self.root is None:
            return None
        # NOCS ships gts for Real/test and CAMERA/val only; the synthetic generator writes the same
        # naming for every split (gts/real_<split>/..., gts/<split>/...).
        if self.kind == "real":
            return (self.root / "gts" / f"real_{self.split}"
                    / f"results_real_{self.split}_{self.scene}_{self.image_id}.pkl")
        return self.root / "gts" / self.split / f"results_{self.split}_{self.scene}_{self.image_id}.pkl"

    def composed_depth_path(self) -> Path | None:
        """CAMERA ``camera_full_depths`` composed depth path, or None (REAL / unknown root)."""
        if self.kind != "camera" or self.root is None:
            return None
        return self.root / "camera_full_depths" / self.split / self.scene / f"{self.image_id}_composed.png"


def parse_frame_path(path: str | os.PathLike) -> NOCSFramePath:
    """Parse a frame prefix (``.../0000``) or any of its files (``.../0000_color.png``).

    REAL vs CAMERA is read from the folder names (``Real``/``CAMERA`` three levels up, else a
    ``scene_*`` folder means REAL and a 5-digit folder CAMERA), else from the meta file's field count.

    Raises:
        FileNotFoundError: nothing exists at ``path`` (and its name is no frame name, or no file of the frame
            exists there). ValueError: the name is not a NOCS frame name or the layout cannot be detected.
    """
    p = Path(path)
    m = _FILE_RE.match(p.name)
    if m:
        prefix = p.parent / m.group(1)
    elif p.name.isdigit():
        prefix = p
    else:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
        raise ValueError(f"{p}: not a NOCS frame; expected a prefix like .../0000 or a file like "
                         ".../0000_color.png")
    scene_dir = prefix.parent
    split_dir = scene_dir.parent
    top = split_dir.parent.name.lower()
    kind: str | None = None
    root: Path | None = None
    if top in ("real", "camera"):
        kind = top
        root = split_dir.parent.parent
    elif scene_dir.name.startswith("scene"):
        kind = "real"
    elif re.fullmatch(r"\d{5}", scene_dir.name):
        kind = "camera"
    else:
        meta = Path(f"{prefix}_meta.txt")
        if meta.is_file():
            lines = [ln.split() for ln in meta.read_text().splitlines() if ln.strip()]
            if lines and all(len(f) == 3 for f in lines):
                kind = "real"
            elif lines and all(len(f) == 4 for f in lines):
                kind = "camera"
    if kind is None and not p.exists() and not any(prefix.parent.glob(f"{prefix.name}_*")):
        raise FileNotFoundError(f"{p}: no such file, folder or frame prefix")
    if kind is None:
        raise ValueError(f"{p}: cannot tell REAL from CAMERA layout (expected "
                         f".../Real|CAMERA/<split>/<scene>/{prefix.name} or a readable _meta.txt)")
    return NOCSFramePath(prefix, kind, split_dir.name, scene_dir.name, prefix.name, root)


def annotated_instances(meta: Sequence[MetaEntry], instance_map: np.ndarray, categories: CategoryTable,
                        meta_path: str | os.PathLike = "meta") -> list[MetaEntry]:
    """Meta entries that are annotated instances, sorted by instance id.

    Kept: class id >= 1 and instance id present in ``instance_map (H, W)``. Class 0 entries are
    distractors.

    Raises:
        ValueError: a class id unknown to ``categories``, or a duplicated instance id.
    """
    present = set(np.unique(instance_map).tolist())
    seen: set[int] = set()
    out = []
    for e in meta:
        if e.inst_id in seen:
            raise ValueError(f"{meta_path}: instance id {e.inst_id} listed twice")
        seen.add(e.inst_id)
        if e.class_id == 0:
            continue
        if e.class_id not in categories:
            raise ValueError(f"{meta_path}: instance {e.inst_id} has class id {e.class_id}, unknown to the "
                             f"category table {categories.name} (valid: 0 and {categories.ids})")
        if e.inst_id in present:
            out.append(e)
    return sorted(out, key=lambda e: e.inst_id)


def recover_pose_from_nocs(
    nocs: np.ndarray, points: np.ndarray, scale: float | None = None, threshold: float = 0.01, seed: int = 0
) -> tuple[float, np.ndarray, np.ndarray, float]:
    """Pose of one instance from NOCS coordinates and the matching camera points (RANSAC Umeyama).

    Args:
        nocs: ``(N, 3)`` NOCS coordinates in [-0.5, 0.5] of the instance pixels.
        points: ``(N, 3)`` back-projected camera points of the same pixels, metres.
        scale: the metric diagonal ``s`` when known (REAL: ``‖extents‖``); estimated when None.
        threshold: RANSAC inlier distance, metres.

    Returns:
        ``s`` (metres), ``R (3, 3)``, ``t (3,)`` metres, and the inlier fraction.
    """
    if scale is None:
        s, R, t, inl = robust_umeyama(nocs, points, threshold, seed=seed)
    else:
        _, R, t, inl = robust_umeyama(np.asarray(nocs, np.float64) * scale, points, threshold,
                                      with_scale=False, seed=seed)
        s = float(scale)
    return float(s), R, t, float(inl.mean())


@functools.lru_cache(maxsize=8)
def _mug_handle_table(path: str) -> dict | None:
    p = Path(path)
    if not p.is_file():
        return None
    d = read_pickle(p)
    if not isinstance(d, dict):
        raise ValueError(f"{p}: expected a dict scene_<k>_res -> per-frame handle visibility")
    return d


def _intrinsics_for(kind: str, height: int, width: int):
    # NOCS intrinsics are defined at 640×480; other sizes (generated data) are the same camera resized
    base = REAL_INTRINSICS if kind == "real" else CAMERA_INTRINSICS
    return base.resized(int(width), int(height))


def _normalised_extents(fp: NOCSFramePath, e: MetaEntry) -> np.ndarray | None:
    """Normalised (diagonal 1) extents from the model files, or None."""
    if fp.root is None:
        return None
    if fp.kind == "real":
        f = real_model_file(fp.root, fp.split, e.model_name)
        if f.is_file():
            ext = read_extents_txt(f)
            return ext / np.linalg.norm(ext)
        return None
    f = camera_model_dir(fp.root, fp.split, e.synset or "", e.model_id) / "bbox.txt"
    return read_bbox_txt(f) if f.is_file() else None


def _real_extents(fp: NOCSFramePath, e: MetaEntry) -> np.ndarray | None:
    if fp.kind != "real" or fp.root is None:
        return None
    f = real_model_file(fp.root, fp.split, e.model_name)
    return read_extents_txt(f) if f.is_file() else None


def _nocs_extents(nocs_pts: np.ndarray) -> np.ndarray:
    """Normalised extents estimated from visible NOCS points (twice the largest |coordinate|)."""
    ext = 2.0 * np.abs(nocs_pts).max(0)
    return ext / max(np.linalg.norm(ext), 1e-9)


def _choose_depth(fp: NOCSFramePath, depth: str) -> tuple[Path, str]:
    if depth not in ("auto", "composed", "object"):
        raise ValueError(f"depth: expected 'auto', 'composed' or 'object', got {depth!r}")
    if fp.kind == "real" or depth == "object":
        return fp.file("depth.png"), "object" if fp.kind == "camera" else "real"
    composed = fp.composed_depth_path()
    if composed is not None and composed.is_file():
        return composed, "composed"
    if depth == "composed":
        raise FileNotFoundError(f"{fp.prefix}: depth='composed' but the composed depth "
                                f"{composed or 'camera_full_depths/...'} is missing")
    return fp.file("depth.png"), "object"


def load_frame(path: str | os.PathLike, depth: str = "auto", categories: CategoryTable | None = None,
               load_nocs: bool = True, recover_poses: bool = True, pose_threshold: float = 0.01) -> Frame:
    """Read one NOCS frame (REAL or CAMERA, detected from the path) into a :class:`Frame`.

    Args:
        path: the frame prefix (``.../0000``) or one of its files (``.../0000_color.png``).
        depth: CAMERA depth source: ``"composed"`` (``camera_full_depths``, real background + objects),
            ``"object"`` (``_depth.png``, rendered objects only, 0 elsewhere) or ``"auto"`` (composed when
            present). Ignored for REAL.
        categories: the category table (default :data:`NOCS_REAL`).
        load_nocs: read the coordinate map into ``Frame.nocs``.
        recover_poses: when no gts pickle exists, recover poses from NOCS map + depth (needs
            ``_coord.png``); otherwise such frames have ``poses=None``.
        pose_threshold: RANSAC inlier distance (metres) for the recovery.

    Returns:
        the frame; depth float32 metres, ``instance_map`` with 0 = background.

    Raises:
        FileNotFoundError: a required file is missing. ValueError: a file is malformed or the gts
            pickle does not match the meta/mask (message names the file).
    """
    fp = parse_frame_path(path)
    table = categories or NOCS_REAL
    rgb = read_color(fp.file("color.png"))
    instance_map = read_mask(fp.file("mask.png"))
    meta_path = fp.file("meta.txt")
    meta = read_meta(meta_path)
    depth_path, depth_source = _choose_depth(fp, depth)
    depth_m, _ = read_depth(depth_path)
    h, w = rgb.shape[:2]
    for name, a in (("mask", instance_map), ("depth", depth_m)):
        if a.shape != (h, w):
            raise ValueError(f"{fp.prefix}: {name} has size {a.shape[1]}x{a.shape[0]}, colour {w}x{h}")
    inst = annotated_instances(meta, instance_map, table, meta_path)
    distractors = sorted(e.inst_id for e in meta if e.class_id == 0)

    coord_path = fp.file("coord.png")
    gts_path = fp.gts_path()
    have_gts = gts_path is not None and gts_path.is_file()
    nocs = None
    if load_nocs or (recover_poses and not have_gts):
        if coord_path.is_file():
            nocs = read_coord(coord_path, instance_map > 0)
        elif load_nocs:
            log.warning("%s: missing; Frame.nocs is None", coord_path)

    handle = np.ones(len(inst), dtype=bool)
    poses: list[Pose] | None = None
    extra: dict = {"kind": fp.kind, "split": fp.split, "scene": fp.scene, "image_id": fp.image_id,
                   "depth_source": depth_source, "depth_path": str(depth_path), "distractor_ids": distractors}
    if have_gts:
        gts = read_gts_pkl(gts_path)
        n = len(gts["gt_RTs"])
        if n != len(inst):
            raise ValueError(f"{gts_path}: {n} poses in gt_RTs but {len(inst)} annotated instances "
                             f"(ids {[e.inst_id for e in inst]}) in {meta_path} and the mask")
        cls = np.array([e.class_id for e in inst], dtype=np.int64)
        if "gt_class_ids" in gts and not np.array_equal(gts["gt_class_ids"], cls):
            raise ValueError(f"{gts_path}: gt_class_ids {gts['gt_class_ids'].tolist()} differ from the "
                             f"classes {cls.tolist()} of the annotated instances in {meta_path}")
        poses = []
        for i, e in enumerate(inst):
            R, t, unit = pose_from_nocs(gts["gt_RTs"][i], np.ones(3))
            s = float(unit[0])  # with unit scales the size is (s, s, s), s = the metric diagonal
            if "gt_scales" in gts:
                size = gts["gt_scales"][i] * s
            else:
                ext = _real_extents(fp, e)
                if ext is None:
                    ne = _normalised_extents(fp, e)
                    if ne is None and nocs is not None:
                        ne = _nocs_extents(nocs[instance_map == e.inst_id])
                        log.warning("%s: no model extents for %s; size estimated from the NOCS map",
                                    fp.prefix, e.model_name)
                    if ne is None:
                        raise FileNotFoundError(f"{gts_path}: no gt_scales and no extents file for "
                                                f"{e.model_name} under {fp.root}/obj_models")
                    ext = ne * s
                size = ext
            poses.append(Pose(R, t, size, class_id=e.class_id))
        if "handle_visibility" in gts:
            handle = gts["handle_visibility"].copy()
        extra["pose_source"] = "gts"
        extra["gts_path"] = str(gts_path)
    elif recover_poses and nocs is not None:
        poses, keep, inliers = [], [], []
        for e in inst:
            sel = instance_map == e.inst_id
            pts, uv = depth_to_points(depth_m, _intrinsics_for(fp.kind, h, w).K, sel)
            npts = nocs[uv[:, 1], uv[:, 0]]
            ok = np.isfinite(npts).all(1)
            pts, npts = pts[ok], npts[ok]
            if len(pts) < MIN_POSE_POINTS:
                log.warning("%s: instance %d has %d valid depth pixels (< %d); dropped", fp.prefix,
                            e.inst_id, len(pts), MIN_POSE_POINTS)
                continue
            ext = _real_extents(fp, e)
            scale = float(np.linalg.norm(ext)) if ext is not None else None
            s, R, t, frac = recover_pose_from_nocs(npts, pts, scale, pose_threshold)
            if ext is None:
                ne = _normalised_extents(fp, e)
                ext = (ne if ne is not None else _nocs_extents(npts)) * s
            poses.append(Pose(R, t, ext, class_id=e.class_id))
            keep.append(e)
            inliers.append(frac)
        inst = keep
        handle = np.ones(len(inst), dtype=bool)
        extra["pose_source"] = "umeyama"
        extra["umeyama_inlier_fraction"] = inliers

    if fp.kind == "real" and fp.split == "train" and fp.root is not None and not have_gts:
        table_mh = _mug_handle_table(str(fp.root / "Real" / "train" / "mug_handle.pkl"))
        key = f"{fp.scene}_res"
        if table_mh is not None and key in table_mh:
            v = bool(np.asarray(table_mh[key]).reshape(-1)[int(fp.image_id)])
            mug_ids = {c.id for c in table if c.handle_rule}
            handle = np.array([v if e.class_id in mug_ids else True for e in inst], dtype=bool)

    return Frame(
        rgb=rgb,
        depth=depth_m,
        intrinsics=_intrinsics_for(fp.kind, h, w),
        instance_map=instance_map,
        instance_ids=np.array([e.inst_id for e in inst], dtype=np.int64),
        class_ids=np.array([e.class_id for e in inst], dtype=np.int64),
        categories=table,
        poses=poses,
        handle_visible=handle,
        model_names=[e.model_name for e in inst],
        nocs=nocs if load_nocs else None,
        frame_id=fp.frame_id,
        source=fp.prefix,
        meta=extra,
    )


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """Sorted frame prefixes of every ``*_color.png`` under ``folder`` (recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    out = []
    for p in folder.rglob("*_color.png"):
        m = _FILE_RE.match(p.name)
        if m:
            out.append(p.parent / m.group(1))
    return sorted(out)


def read_split_list(path: Path, top_dir: Path) -> list[Path]:
    """Frame prefixes of an SPD split list (``<top>/<split>_list.txt``, lines like ``test/scene_1/0000``,
    relative to ``top_dir`` = ``<root>/Real`` or ``<root>/CAMERA``, or to its parent).

    Raises:
        FileNotFoundError: a listed frame has no ``_color.png`` (message names the list file and line).
    """
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        rel = Path(s)
        cand = [top_dir / rel, top_dir.parent / rel]
        hit = next((c for c in cand if Path(f"{c}_color.png").is_file()), None)
        if hit is None:
            raise FileNotFoundError(f"{path}:{n}: frame {s!r} not found under {top_dir} "
                                    f"({cand[0]}_color.png missing)")
        out.append(hit)
    return out


def _split_hint(root: Path) -> str:
    """What a missing split's error adds: the subsets ``root`` has, or the dataset root when ``root`` is a folder
    inside the layout (``Real``, ``Real/test``, a scene)."""
    have = [f"{top.lower()}_{d.name}" for top in ("Real", "CAMERA") if (root / top).is_dir()
            for d in sorted((root / top).iterdir()) if d.is_dir()]
    if have:
        return f"; subsets under this root: {', '.join(have)}"
    for up in (root, *root.parents):
        if up.name in ("Real", "CAMERA"):
            return f"; the dataset root is the folder holding {up.name}/: {up.parent}"
    return "; the dataset root is the folder holding Real/ (REAL275) and/or CAMERA/ (CAMERA25)"


class NOCSDataset:
    """A NOCS subset as a sequence of :class:`Frame`.

    Args:
        root: the dataset root (holding ``Real/``, ``CAMERA/``, ``gts/``, ...).
        subset: ``real_test`` | ``real_train`` | ``camera_val`` | ``camera_train``.
        depth: CAMERA depth source (``auto``/``composed``/``object``, see :func:`load_frame`).
        categories: category table; default :data:`NOCS_REAL` (also for CAMERA; pass
            :data:`~demopose.categories.NOCS_CAMERA` for the CAMERA mean sizes).
        use_list_file: when ``<root>/<Real|CAMERA>/<split>_list.txt`` exists, take the frames from it
            (SPD's filtered lists); otherwise list every ``*_color.png`` in the split folder.
        load_nocs, recover_poses: see :func:`load_frame`.
    """

    def __init__(self, root: str | os.PathLike, subset: str = "real_test", depth: str = "auto",
                 categories: CategoryTable | None = None, use_list_file: bool = True,
                 load_nocs: bool = True, recover_poses: bool = True) -> None:
        if subset not in SUBSETS and not re.fullmatch(r"(real|camera)_\w+", subset):
            raise ValueError(f"subset: expected one of {sorted(SUBSETS)} (or real_<split> / camera_<split> "
                             f"for generated data), got {subset!r}")
        if depth not in ("auto", "composed", "object"):
            raise ValueError(f"depth: expected 'auto', 'composed' or 'object', got {depth!r}")
        self.root = Path(root)
        self.subset = subset
        self.depth = depth
        self.categories = categories or NOCS_REAL
        self.load_nocs = load_nocs
        self.recover_poses = recover_poses
        top, split = SUBSETS.get(subset) or (("Real", "CAMERA")[subset.startswith("camera")],
                                              subset.split("_", 1)[1])
        top_dir = self.root / top
        split_dir = top_dir / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"{split_dir}: folder not found (subset {subset!r} of root {self.root})"
                                    + _split_hint(self.root))
        list_file = top_dir / f"{split}_list.txt"
        if use_list_file and list_file.is_file():
            self.frames = read_split_list(list_file, top_dir)
            if not self.frames:
                raise ValueError(f"{list_file}: empty split list: subset {subset!r} has no frames listed (regenerate "
                                 f"the list, e.g. rerun the split's demopose synth command, or delete the empty file "
                                 f"to use every frame of {split_dir})")
        else:
            self.frames = list_frames(split_dir)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Frame:
        if not -len(self) <= index < len(self):
            raise IndexError(f"NOCSDataset index {index} out of range (0..{len(self) - 1})")
        return load_frame(self.frames[index], depth=self.depth, categories=self.categories,
                          load_nocs=self.load_nocs, recover_poses=self.recover_poses)

    def __repr__(self) -> str:
        return f"NOCSDataset(root={str(self.root)!r}, subset={self.subset!r}, frames={len(self)})"


# --------------------------------------------------------------------------------------------------
# the dataset registry entry (demopose.data.registry)
# --------------------------------------------------------------------------------------------------


def detect_nocs_layout(path: Path) -> str | None:
    """``nocs_frame`` (a frame prefix or any of its files), ``nocs_root`` (a folder with ``Real/`` or ``CAMERA/``),
    ``nocs_folder`` (a folder holding ``*_color.png`` frames: a scene or a split), or None.

    Raises:
        ValueError / FileNotFoundError: a file that is not a NOCS frame file (:func:`parse_frame_path`).
    """
    if not path.is_dir():
        if path.exists() or any(path.parent.glob(f"{path.name}_*")):
            parse_frame_path(path)
            return "nocs_frame"
        return None
    if any((path / d).is_dir() for d in ("Real", "CAMERA")):
        return "nocs_root"
    if next(path.rglob("*_color.png"), None) is not None:
        return "nocs_folder"
    return None


def _frame_name(prefix: Path) -> str:
    """``Real_test_scene_1_0000``: the frame id as a file name (the last three path parts when the layout is not
    recognisable; loading that frame then names the problem)."""
    try:
        return parse_frame_path(prefix).frame_id.replace("/", "_")
    except (ValueError, FileNotFoundError):
        return "_".join(prefix.parts[-3:])


def _list_nocs(path: Path, layout: str, depth: str = "auto") -> list[FrameRef]:
    """The frames of a NOCS layout (a dataset root: those of ``Real/`` then ``CAMERA/``), read by
    :func:`load_frame` with the CAMERA ``depth`` source."""
    if layout == "nocs_frame":
        prefixes = [parse_frame_path(path).prefix]
    elif layout == "nocs_root":
        prefixes = [f for top in ("Real", "CAMERA") if (path / top).is_dir() for f in list_frames(path / top)]
    else:
        prefixes = list_frames(path)
    return [FrameRef(_frame_name(q), str(q), functools.partial(load_frame, q, depth=depth)) for q in prefixes]


def _check_nocs(path: Path, layout: str, categories: CategoryTable | None):
    from demopose.data.check import plan_nocs_checks

    return plan_nocs_checks(path, layout, categories)


def _open_nocs_split(root: Path, subset: str, categories: CategoryTable | None, depth: str = "auto") -> NOCSDataset:
    # training and testing read depth, masks and poses: the NOCS maps are not decoded
    return NOCSDataset(root, subset, depth=depth, categories=categories, load_nocs=False)


register_reader(DatasetReader(
    name="nocs", description="NOCS *_color.png frames, a scene or split folder of them, or a root with Real/ or "
                             "CAMERA/ (also the synthetic generator's output)",
    categories="nocs_real", detect=detect_nocs_layout, list_frames=_list_nocs, check=_check_nocs,
    open_split=_open_nocs_split, options=("depth",), priority=20))
