"""Write synthetic frames in the original NOCS layout, byte-format compatible with the NOCS files.

Layout (notes/depth_and_eval.md §5, checked against ``tests/fixtures/nocs_sample``)::

    style "camera":
      CAMERA/<split>/<folder:05d>/<i:04d>_{color,depth,mask,coord}.png, _meta.txt   (10 frames per folder)
      camera_full_depths/<split>/<folder>/<i>_composed.png                           (16-bit mm, full scene)
      gts/<split>/results_<split>_<folder>_<i>.pkl
      obj_models/<split>/<synset>/<model_id>/{model.obj, bbox.txt, model_mpl.npy}
      CAMERA/<split>_list.txt                                                        (<split>/<folder>/<i>)
    style "real":
      Real/<split>/scene_<k>/<i:04d>_{color,depth,mask,coord}.png, _meta.txt         (k = 1 + index // per_scene)
      gts/real_<split>/results_real_<split>_scene_<k>_<i>.pkl
      obj_models/real_<split>/{<name>.obj, <name>.txt, <name>_mpl.npy}
      Real/<split>_list.txt                                                          (<split>/scene_<k>/<i>)
      Real/<split>/mug_handle.pkl                       (scene_<k>_res -> per-frame handle visibility)

File encodings (cv2 channel order on disk):

* ``_color.png``: 8-bit BGR.
* ``_depth.png``: REAL 16-bit mm, full scene. CAMERA 8-bit BGRA holding **only the objects**:
  G = mm >> 8, R = mm & 255 (``depth = ch1·256 + ch2``), 32001 where no object, B = an 8-bit depth
  preview (≈ 0.0526·mm − 7.9 as in the CAMERA files; readers ignore it), A = 255.
* ``_mask.png``: instance id, 255 = background. REAL 8-bit gray; CAMERA BGRA with R = id,
  B = G = 0 on objects and 255 on background, A = 255.
* ``_coord.png``: RGB = (x + 0.5, y + 0.5, 1 − (z + 0.5)) · 255 for the NOCS point (x, y, z) (the
  loaders flip z back); CAMERA BGRA with 255 on background, REAL BGR with 0 on background.
* ``_meta.txt``: ``inst class name`` (REAL) / ``inst class synset model`` (CAMERA), every instance.
* gts pkl: ``gt_class_ids`` int64, ``gt_bboxes`` int32 (y1, x1, y2, x2; end exclusive), ``gt_RTs``
  float64 ``[s·R | t]``, ``gt_scales`` float32 (normalised), ``gt_handle_visibility`` int64 (and the
  same as ``handle_visibility``), ``gt_instance_ids``, ``image_id``, ``image_path`` (relative to the
  root, no suffix), ``obj_list``; for the foreground instances visible in the mask, by ascending id.
* Models: REAL ``<name>.obj`` metric (centred, NOCS axes) + ``<name>.txt`` (3 extents, m). CAMERA
  ``model.obj`` normalised (diagonal 1) with **z negated** (NOCS ``load_mesh`` and SPD flip the
  ShapeNet meshes' z when loading, so the loaded mesh matches the coordinate maps) + ``bbox.txt`` (max
  row, min row). ``*_mpl.npy``: ``(N, 3)`` float32 Poisson-disk surface samples in the normalised
  NOCS frame (no flip), the Mesh-Point-Loss targets.

Every file is written atomically (:mod:`demopose.io`). A frame is complete when its ``_meta.txt``
exists: it is written last.
"""

from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demopose.geometry.pose import pose_to_nocs
from demopose.io import write_bytes_atomic, write_pickle_atomic, write_png_atomic, write_text_atomic
from demopose.synth.scene import Instance, Scene

__all__ = [
    "CAMERA_NO_DEPTH",
    "FramePaths",
    "STYLES",
    "encode_camera_depth",
    "encode_coord",
    "encode_depth_mm",
    "encode_mask",
    "frame_paths",
    "gt_record",
    "handle_visibility",
    "model_files",
    "remove_stray_temp_files",
    "write_frame",
    "write_model",
]

log = logging.getLogger(__name__)

STYLES = ("camera", "real")
CAMERA_NO_DEPTH = 32001


@dataclass(frozen=True)
class FramePaths:
    """Where one frame's files go.

    Attributes:
        stem: ``<dir>/<i:04d>`` (append ``_color.png`` etc.). composed: CAMERA full depth or None.
        gts: ground-truth pickle. image_path: root-relative stem (written into the gts pkl).
        list_entry: the line of ``<split>_list.txt``. list_file: that list's path.
    """

    stem: Path
    composed: Path | None
    gts: Path
    image_path: str
    list_entry: str
    list_file: Path

    def file(self, kind: str) -> Path:
        """``color``/``depth``/``mask``/``coord`` -> ``.png``; ``meta`` -> ``.txt``."""
        return Path(f"{self.stem}_{kind}.{'txt' if kind == 'meta' else 'png'}")

    @property
    def meta(self) -> Path:
        return self.file("meta")

    def all_files(self) -> list[Path]:
        """Every file of the frame, the completion marker (meta) last."""
        out = [self.file(k) for k in ("color", "depth", "mask", "coord")]
        if self.composed is not None:
            out.append(self.composed)
        return out + [self.gts, self.meta]


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"style: expected one of {STYLES}, got {style!r}")


def frame_paths(root: str | os.PathLike, style: str, split: str, index: int,
                frames_per_scene: int = 100) -> FramePaths:
    """Paths of frame ``index`` (0-based, global in the split) of a synthetic dataset at ``root``."""
    _check_style(style)
    root = Path(root)
    i = int(index)
    if style == "camera":
        folder, img = f"{i // 10:05d}", f"{i % 10:04d}"
        d = root / "CAMERA" / split / folder
        return FramePaths(stem=d / img, composed=root / "camera_full_depths" / split / folder / f"{img}_composed.png",
                          gts=root / "gts" / split / f"results_{split}_{folder}_{img}.pkl",
                          image_path=f"CAMERA/{split}/{folder}/{img}", list_entry=f"{split}/{folder}/{img}",
                          list_file=root / "CAMERA" / f"{split}_list.txt")
    scene, img = f"scene_{i // frames_per_scene + 1}", f"{i % frames_per_scene:04d}"
    d = root / "Real" / split / scene
    return FramePaths(stem=d / img, composed=None,
                      gts=root / "gts" / f"real_{split}" / f"results_real_{split}_{scene}_{img}.pkl",
                      image_path=f"Real/{split}/{scene}/{img}", list_entry=f"{split}/{scene}/{img}",
                      list_file=root / "Real" / f"{split}_list.txt")


# --------------------------------------------------------------------------------------------------
# encoders (pure)


def encode_depth_mm(depth: np.ndarray) -> np.ndarray:
    """``(H, W)`` metres -> ``(H, W)`` uint16 millimetres (rounded, clipped to 65535; 0 stays 0)."""
    return np.clip(np.round(np.nan_to_num(depth) * 1000.0), 0, 65535).astype(np.uint16)


def encode_camera_depth(depth: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """CAMERA object-only depth: metres + instance map -> ``(H, W, 4)`` uint8 BGRA (see module doc)."""
    mm = np.clip(np.round(np.nan_to_num(depth) * 1000.0), 0, CAMERA_NO_DEPTH - 1).astype(np.int32)
    mm = np.where(instance > 0, mm, CAMERA_NO_DEPTH)
    out = np.empty(depth.shape + (4,), np.uint8)
    out[..., 0] = np.where(mm == CAMERA_NO_DEPTH, 255, np.clip(np.round(0.0526 * mm - 7.92), 0, 254))
    out[..., 1] = mm >> 8
    out[..., 2] = mm & 255
    out[..., 3] = 255
    return out


def encode_mask(instance: np.ndarray, style: str) -> np.ndarray:
    """``(H, W)`` int ids (0 = background) -> NOCS mask image (255 = background), cv2 order."""
    _check_style(style)
    if instance.max(initial=0) >= 255:
        raise ValueError(f"instance: ids must be < 255 for an 8-bit mask, got {instance.max()}")
    ids = np.where(instance > 0, instance, 255).astype(np.uint8)
    if style == "real":
        return ids
    bg = np.where(instance > 0, 0, 255).astype(np.uint8)
    return np.stack([bg, bg, ids, np.full_like(ids, 255)], -1)


def encode_coord(nocs: np.ndarray, instance: np.ndarray, style: str) -> np.ndarray:
    """``(H, W, 3)`` NOCS in [-0.5, 0.5] -> coordinate image in cv2 BGR(A) order (z stored as 1 − z)."""
    _check_style(style)
    rgb = np.nan_to_num(nocs, nan=0.0) + 0.5
    rgb[..., 2] = 1.0 - rgb[..., 2]
    rgb = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    fg = instance > 0
    bgr = rgb[..., ::-1]
    if style == "real":
        return np.where(fg[..., None], bgr, 0).astype(np.uint8)
    out = np.where(fg[..., None], bgr, 255).astype(np.uint8)
    return np.concatenate([out, np.full(out.shape[:2] + (1,), 255, np.uint8)], -1)


# --------------------------------------------------------------------------------------------------
# ground truth


def handle_visibility(instance: np.ndarray, handle: np.ndarray, inst_id: int, min_fraction: float = 0.02,
                      min_pixels: int = 2) -> bool:
    """Whether instance ``inst_id``'s handle is visible: handle pixels >= max(min_pixels, fraction·area)."""
    m = instance == inst_id
    n_handle = int((handle & m).sum())
    return n_handle >= max(min_pixels, min_fraction * int(m.sum()))


def gt_record(scene: Scene, instance: np.ndarray, handle: np.ndarray, image_id: int, image_path: str,
              obj_paths: dict[int, str]) -> dict:
    """The NOCS gts dict of one frame (see module doc) from the scene and the clean instance map."""
    present = set(np.unique(instance).tolist()) - {0}
    insts = [i for i in scene.instances if i.class_id > 0 and i.inst_id in present]
    n = len(insts)
    RTs = np.zeros((n, 4, 4))
    scales = np.zeros((n, 3), np.float32)
    boxes = np.zeros((n, 4), np.int32)
    hv = np.ones(n, np.int64)
    for k, inst in enumerate(insts):
        RT, sc = pose_to_nocs(inst.R, inst.t, inst.extents)
        RTs[k], scales[k] = RT, sc
        ys, xs = np.nonzero(instance == inst.inst_id)
        boxes[k] = (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
        if inst.handle_faces.any():
            hv[k] = int(handle_visibility(instance, handle, inst.inst_id))
    return {
        "image_id": np.int64(image_id),
        "image_path": image_path,
        "gt_class_ids": np.array([i.class_id for i in insts], np.int64),
        "gt_instance_ids": np.array([i.inst_id for i in insts], np.int64),
        "gt_bboxes": boxes,
        "gt_RTs": RTs,
        "gt_scales": scales,
        "gt_handle_visibility": hv,
        "handle_visibility": hv.copy(),
        "obj_list": [obj_paths[i.inst_id] for i in insts],
    }


# --------------------------------------------------------------------------------------------------
# models


def model_files(root: str | os.PathLike, style: str, split: str, inst: Instance) -> tuple[Path, Path, Path]:
    """``(mesh .obj, extents/bbox .txt, mpl .npy)`` paths of an instance's model."""
    _check_style(style)
    root = Path(root)
    if style == "real":
        d = root / "obj_models" / f"real_{split}"
        return d / f"{inst.model_name}.obj", d / f"{inst.model_name}.txt", d / f"{inst.model_name}_mpl.npy"
    d = root / "obj_models" / split / inst.synset / inst.model_id
    return d / "model.obj", d / "bbox.txt", d / "model_mpl.npy"


def _obj_text(V: np.ndarray, F: np.ndarray) -> str:
    buf = io.StringIO()
    buf.write("# demopose synthetic model\n")
    np.savetxt(buf, V, fmt="v %.6f %.6f %.6f")
    np.savetxt(buf, F + 1, fmt="f %d %d %d")
    return buf.getvalue()


_warned_sampling = False


def _mpl_samples(V: np.ndarray, F: np.ndarray, n: int, seed: int) -> np.ndarray:
    import trimesh

    mesh = trimesh.Trimesh(V, F, process=False)
    rng = np.random.default_rng(seed)
    try:
        from demopose.geometry.sampling import poisson_disk_sample
    except ImportError:
        global _warned_sampling
        if not _warned_sampling:
            log.warning("demopose.geometry.sampling.poisson_disk_sample is not available; MPL samples are "
                        "uniform area-weighted surface samples instead of Poisson-disk samples")
            _warned_sampling = True
        pts, _ = trimesh.sample.sample_surface(mesh, n, seed=int(rng.integers(2**31)))
        return np.asarray(pts, np.float32)
    return np.asarray(poisson_disk_sample(mesh, n, rng), np.float32).reshape(-1, 3)


def write_model(root: str | os.PathLike, style: str, split: str, inst: Instance, mpl_points: int = 1024,
                seed: int = 0) -> None:
    """Write an instance's model files unless they are complete already (the ``.npy`` is written last)."""
    obj_p, txt_p, npy_p = model_files(root, style, split, inst)
    if npy_p.is_file():
        return
    Vn = inst.vertices / inst.scale
    if style == "real":
        write_text_atomic(obj_p, _obj_text(inst.vertices, inst.faces))
        write_text_atomic(txt_p, "".join(f"{e:.18e}\n" for e in inst.extents))
    else:
        Vf = Vn * np.array([1.0, 1.0, -1.0])
        write_text_atomic(obj_p, _obj_text(Vf, inst.faces[:, ::-1]))
        hi = inst.extents / inst.scale / 2
        write_text_atomic(txt_p, f"{hi[0]:.18e} {hi[1]:.18e} {hi[2]:.18e}\n{-hi[0]:.18e} {-hi[1]:.18e} {-hi[2]:.18e}\n")
    pts = _mpl_samples(Vn, inst.faces, mpl_points, seed + int(inst.model_id[:8], 16))
    buf = io.BytesIO()
    np.save(buf, pts)
    write_bytes_atomic(npy_p, buf.getvalue())


# --------------------------------------------------------------------------------------------------
# frames


_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}(\.[A-Za-z0-9]+)?$")


def remove_stray_temp_files(folder: str | os.PathLike) -> int:
    """Delete temp files left by killed atomic writes (``.<name>.<random>[.ext]``) under ``folder``."""
    n = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            if _TEMP_RE.match(f):
                os.unlink(os.path.join(dirpath, f))
                n += 1
    return n


def write_frame(root: str | os.PathLike, style: str, split: str, index: int, scene: Scene,
                color: np.ndarray, depth: np.ndarray, instance: np.ndarray, nocs: np.ndarray,
                handle: np.ndarray, frames_per_scene: int = 100, mpl_points: int = 1024,
                model_seed: int = 0) -> FramePaths:
    """Write one frame (and any missing model files) in the NOCS layout; ``_meta.txt`` last.

    Args:
        color: ``(H, W, 3)`` uint8 RGB (noisy or clean). depth: ``(H, W)`` float32 metres (noisy or
            clean; 0 = hole). instance: ``(H, W)`` int32 clean instance ids. nocs: ``(H, W, 3)`` clean.
        handle: ``(H, W)`` bool handle pixels (clean render).
        model_seed: seed of the MPL surface sampling.
    """
    p = frame_paths(root, style, split, index, frames_per_scene)
    obj_paths = {}
    for inst in scene.instances:
        write_model(root, style, split, inst, mpl_points, seed=model_seed)
        obj_paths[inst.inst_id] = model_files(root, style, split, inst)[0].relative_to(Path(root)).as_posix()
    write_png_atomic(p.file("color"), np.ascontiguousarray(color[..., ::-1]))
    if style == "camera":
        write_png_atomic(p.file("depth"), encode_camera_depth(depth, instance))
    else:
        write_png_atomic(p.file("depth"), encode_depth_mm(depth))
    write_png_atomic(p.file("mask"), encode_mask(instance, style))
    write_png_atomic(p.file("coord"), encode_coord(nocs, instance, style))
    if p.composed is not None:
        write_png_atomic(p.composed, encode_depth_mm(depth))
    write_pickle_atomic(p.gts, gt_record(scene, instance, handle, index, p.image_path, obj_paths))
    if style == "camera":
        lines = [f"{i.inst_id} {i.class_id} {i.synset} {i.model_id}" for i in scene.instances]
    else:
        lines = [f"{i.inst_id} {i.class_id} {i.model_name}" for i in scene.instances]
    write_text_atomic(p.meta, "".join(line + "\n" for line in lines))
    return p
