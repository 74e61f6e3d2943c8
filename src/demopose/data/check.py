"""Validate a dataset folder and list every problem with the file it is in.

Layouts recognised (:func:`detect_layout`, through the dataset registry :mod:`demopose.data.registry`): a NOCS
frame (prefix or any of its files), a NOCS scene or split folder, a NOCS dataset root (``Real/``, ``CAMERA/``,
...), a HouseCat6D scene or root, a folder of your own colour + depth PNGs with a ``camera.json``. Each NOCS frame
is checked for missing companion files, unreadable or truncated PNGs, wrong depth encoding / dtype /
size (640×480 for NOCS), meta lines with unknown class ids, meta ids absent from the mask and mask ids
absent from the meta, annotated instances with (almost) no valid depth, and inconsistent ground-truth
pickles (shapes, instance count, class ids, poses that do not project into their masks).

Errors make a frame unusable; warnings are suspicious but legal (e.g. a meta line for an object that
is not visible in this frame, which NOCS files routinely contain).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from demopose.categories import HOUSECAT6D, NOCS_REAL, CategoryTable
from demopose.data.detections import read_spd_label
from demopose.data.housecat6d import (
    is_housecat6d_scene,
    list_housecat6d_frames,
    read_housecat6d_intrinsics,
    read_housecat6d_label,
)
from demopose.data.nocs import MIN_POSE_POINTS, NOCSFramePath, list_frames, parse_frame_path
from demopose.data.nocs_files import (
    MetaEntry,
    decode_coord,
    decode_depth_mm,
    read_gts_pkl,
    read_meta,
    read_png,
)
from demopose.data.obj_models import camera_model_dir, real_model_file
from demopose.geometry.camera import CAMERA_INTRINSICS, REAL_INTRINSICS, project_points

__all__ = ["CheckJob", "CheckReport", "Problem", "check_dataset", "check_housecat6d_frame", "check_nocs_frame",
           "detect_layout", "plan_housecat6d_checks", "plan_nocs_checks", "plan_user_frames_checks"]

log = logging.getLogger(__name__)

NOCS_SIZE = (640, 480)
"""Expected NOCS image size (width, height)."""


@dataclass(frozen=True)
class Problem:
    """One finding: ``severity`` is ``"error"`` or ``"warning"``; ``path`` the file concerned."""

    severity: str
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.severity.upper():7s} {self.path}: {self.message}"


CheckJob = tuple[Callable[[], list[Problem]], str]
"""One frame's check: ``(run() -> its problems, the frame's name)``."""


@dataclass
class CheckReport:
    """The result of :func:`check_dataset`."""

    path: Path
    layout: str
    frames_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def summary(self) -> str:
        return (f"{self.path} ({self.layout}): {self.frames_checked} frames checked, "
                f"{len(self.errors)} errors, {len(self.warnings)} warnings")


class _Sink:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, path: Path, msg: str) -> None:
        self.problems.append(Problem("error", Path(path), msg))

    def warn(self, path: Path, msg: str) -> None:
        self.problems.append(Problem("warning", Path(path), msg))


def _png(sink: _Sink, path: Path, required: bool = True) -> np.ndarray | None:
    if not path.is_file():
        if required:
            sink.error(path, "missing companion file")
        return None
    try:
        return read_png(path)
    except (ValueError, FileNotFoundError) as e:
        sink.error(path, str(e).removeprefix(f"{path}: "))
        return None


def _size_ok(sink: _Sink, path: Path, img: np.ndarray | None, size: tuple[int, int] | None) -> bool:
    if img is None:
        return False
    if size is not None and (img.shape[1], img.shape[0]) != size:
        sink.error(path, f"image size {img.shape[1]}x{img.shape[0]}, expected {size[0]}x{size[1]}")
        return False
    return True


def check_nocs_frame(path: str | os.PathLike, categories: CategoryTable | None = None,
                     size: tuple[int, int] | None = NOCS_SIZE) -> list[Problem]:
    """Check one NOCS frame (prefix or any of its files); returns its problems."""
    table = categories or NOCS_REAL
    sink = _Sink()
    try:
        fp = parse_frame_path(path)
    except ValueError as e:
        return [Problem("error", Path(path), str(e))]
    f = fp.file
    color = _png(sink, f("color.png"))
    if color is not None and (color.dtype != np.uint8 or color.ndim != 3 or color.shape[2] not in (3, 4)):
        sink.error(f("color.png"), f"expected 8-bit RGB(A), got {color.dtype} {color.shape}")
    _size_ok(sink, f("color.png"), color, size)
    if size is None and color is not None:
        size = (color.shape[1], color.shape[0])

    depth_mm = None
    dimg = _png(sink, f("depth.png"))
    if _size_ok(sink, f("depth.png"), dimg, size):
        want = "uint16" if fp.kind == "real" else "camera_rgb"
        try:
            depth_mm, enc = decode_depth_mm(dimg, f("depth.png"))
            if enc != want:
                exp = ("16-bit single-channel millimetres" if want == "uint16"
                       else "8-bit RGB(A) CAMERA object encoding")
                sink.error(f("depth.png"), f"wrong depth encoding for a {fp.kind.upper()} frame: got "
                                           f"{dimg.dtype} {dimg.shape}, expected {exp}")
                depth_mm = None
        except ValueError as e:
            sink.error(f("depth.png"), str(e).removeprefix(f"{f('depth.png')}: "))
        if depth_mm is not None and not np.any(depth_mm > 0):
            sink.warn(f("depth.png"), "depth is zero everywhere")

    composed = fp.composed_depth_path()
    if composed is not None:
        cimg = _png(sink, composed, required=False)
        if cimg is None and not composed.is_file():
            sink.warn(composed, "composed depth missing (only the object-only _depth.png is available)")
        elif _size_ok(sink, composed, cimg, size):
            if cimg.ndim != 2 or cimg.dtype != np.uint16:
                sink.error(composed, f"expected 16-bit single-channel millimetres, got {cimg.dtype} {cimg.shape}")
            elif depth_mm is not None:
                obj = depth_mm > 0
                if obj.any() and np.mean(cimg[obj].astype(np.int32) == depth_mm[obj]) < 0.99:
                    sink.warn(composed, "differs from the object depth _depth.png on more than 1% of the "
                                        "object pixels")

    mask = None
    mimg = _png(sink, f("mask.png"))
    if _size_ok(sink, f("mask.png"), mimg, size):
        if mimg.dtype != np.uint8:
            sink.error(f("mask.png"), f"expected an 8-bit mask, got {mimg.dtype}")
        else:
            mask = (mimg if mimg.ndim == 2 else mimg[:, :, 2]).astype(np.int32)
            mask[mask == 255] = 0

    cimg = _png(sink, f("coord.png"))
    if _size_ok(sink, f("coord.png"), cimg, size):
        try:
            decode_coord(cimg)
        except ValueError as e:
            sink.error(f("coord.png"), str(e))

    meta: list[MetaEntry] | None = None
    if not f("meta.txt").is_file():
        sink.error(f("meta.txt"), "missing companion file")
    else:
        try:
            meta = read_meta(f("meta.txt"))
        except ValueError as e:
            sink.error(f("meta.txt"), str(e).removeprefix(f"{f('meta.txt')}"))
    annotated: list[MetaEntry] = []
    if meta is not None:
        seen: set[int] = set()
        for e in meta:
            if e.inst_id in seen:
                sink.error(f("meta.txt"), f"instance id {e.inst_id} listed twice")
            seen.add(e.inst_id)
            if e.class_id != 0 and e.class_id not in table:
                sink.error(f("meta.txt"), f"instance {e.inst_id}: unknown class id {e.class_id} (valid: 0 and "
                                          f"{table.ids[0]}..{table.ids[-1]} of {table.name})")
        if mask is not None:
            present = set(np.unique(mask).tolist()) - {0}
            for iid in sorted(present - seen):
                sink.error(f("mask.png"), f"instance id {iid} occurs in the mask but not in {f('meta.txt').name}")
            absent = [e.inst_id for e in meta if e.class_id != 0 and e.inst_id not in present]
            if absent:
                sink.warn(f("meta.txt"), f"instances {absent} (class >= 1) have an empty mask in this frame "
                                         "(normal for objects out of view)")
            annotated = sorted((e for e in meta if e.class_id in table and e.inst_id in present),
                               key=lambda e: e.inst_id)
            if depth_mm is not None:
                for e in annotated:
                    n = int(np.count_nonzero((mask == e.inst_id) & (depth_mm > 0)))
                    if n < MIN_POSE_POINTS:
                        sink.warn(f("depth.png"), f"instance {e.inst_id}: only {n} valid depth pixels "
                                                  f"(< {MIN_POSE_POINTS})")

    if f("label.pkl").is_file():
        try:
            lab = read_spd_label(f("label.pkl"))
            if meta is not None and not set(lab.instance_ids.tolist()) <= {e.inst_id for e in meta}:
                sink.error(f("label.pkl"), f"instance ids {lab.instance_ids.tolist()} not all in the meta file")
        except (ValueError, FileNotFoundError) as e:
            sink.error(f("label.pkl"), str(e).removeprefix(f"{f('label.pkl')}: "))

    _check_gts(sink, fp, annotated, mask, meta is not None and mask is not None)
    _check_models(sink, fp, annotated)
    return sink.problems


def _check_gts(sink: _Sink, fp: NOCSFramePath, annotated: list[MetaEntry], mask: np.ndarray | None,
               can_compare: bool) -> None:
    gp = fp.gts_path()
    if gp is None:
        return
    if not gp.is_file():
        if (fp.kind, fp.split) in (("real", "test"), ("camera", "val")):  # the splits NOCS ships gts for
            sink.warn(gp, "ground-truth pickle missing")
        return
    try:
        gts = read_gts_pkl(gp)
    except (ValueError, FileNotFoundError) as e:
        sink.error(gp, str(e).removeprefix(f"{gp}: "))
        return
    rts = gts["gt_RTs"]
    if not can_compare:
        return
    if len(rts) != len(annotated):
        sink.error(gp, f"{len(rts)} poses in gt_RTs but {len(annotated)} annotated instances "
                       f"(ids {[e.inst_id for e in annotated]}) in the meta file and mask")
        return
    cls = np.array([e.class_id for e in annotated], dtype=np.int64)
    if "gt_class_ids" in gts and not np.array_equal(gts["gt_class_ids"], cls):
        sink.error(gp, f"gt_class_ids {gts['gt_class_ids'].tolist()} differ from the annotated classes "
                       f"{cls.tolist()}")
    h, w = mask.shape[:2]  # NOCS intrinsics are for 640×480; generated data may be resized
    K = (REAL_INTRINSICS if fp.kind == "real" else CAMERA_INTRINSICS).resized(w, h).K
    for e, RT in zip(annotated, rts):
        if not np.all(np.isfinite(RT)) or np.linalg.det(RT[:3, :3]) <= 0:
            sink.error(gp, f"instance {e.inst_id}: gt_RT is not a finite scaled rotation")
            continue
        if RT[2, 3] <= 0:
            sink.error(gp, f"instance {e.inst_id}: translation z = {RT[2, 3]:.3f} m is not in front of the camera")
            continue
        u, v = project_points(RT[None, :3, 3], K)[0]
        ys, xs = np.nonzero(mask == e.inst_id)
        pad = 10
        if not (xs.min() - pad <= u <= xs.max() + pad and ys.min() - pad <= v <= ys.max() + pad):
            sink.warn(gp, f"instance {e.inst_id}: gt translation projects to ({u:.0f}, {v:.0f}), outside its mask "
                          f"box x {xs.min()}..{xs.max()}, y {ys.min()}..{ys.max()}")


def _check_models(sink: _Sink, fp: NOCSFramePath, annotated: list[MetaEntry]) -> None:
    if fp.root is None or not (fp.root / "obj_models").is_dir():
        return
    for e in annotated:
        if fp.kind == "real":
            p = real_model_file(fp.root, fp.split, e.model_name)
            if (p.parent).is_dir() and not p.is_file():
                sink.warn(p, f"extents file of {e.model_name} missing (sizes fall back to the NOCS map)")
        else:
            d = camera_model_dir(fp.root, fp.split, e.synset or "", e.model_id)
            if d.parent.parent.is_dir() and not (d / "bbox.txt").is_file():
                sink.warn(d / "bbox.txt", "CAMERA model bbox.txt missing")


def check_housecat6d_frame(scene_dir: str | os.PathLike, image_id: str,
                           categories: CategoryTable | None = None) -> list[Problem]:
    """Check one HouseCat6D frame; returns its problems."""
    table = categories or HOUSECAT6D
    sink = _Sink()
    scene = Path(scene_dir)
    rgb_p, dep_p, ins_p = (scene / d / f"{image_id}.png" for d in ("rgb", "depth", "instance"))
    lab_p = scene / "labels" / f"{image_id}_label.pkl"
    rgb = _png(sink, rgb_p)
    size = None if rgb is None else (rgb.shape[1], rgb.shape[0])
    d = _png(sink, dep_p)
    if _size_ok(sink, dep_p, d, size) and (d.ndim != 2 or d.dtype != np.uint16):
        sink.error(dep_p, f"expected 16-bit single-channel depth in millimetres, got {d.dtype} {d.shape}")
    ins = _png(sink, ins_p)
    inst = None
    if _size_ok(sink, ins_p, ins, size):
        inst = (ins if ins.ndim == 2 else ins[:, :, 2]).astype(np.int32)
        inst[inst == 255] = 0
    if not lab_p.is_file():
        sink.error(lab_p, "missing companion file")
        return sink.problems
    try:
        lab = read_housecat6d_label(lab_p)
    except (ValueError, FileNotFoundError) as e:
        sink.error(lab_p, str(e).removeprefix(f"{lab_p}: "))
        return sink.problems
    for c in lab["class_ids"].tolist():
        if c not in table:
            sink.error(lab_p, f"unknown class id {c} (valid: {table.ids[0]}..{table.ids[-1]} of {table.name})")
    if inst is not None:
        present = set(np.unique(inst).tolist()) - {0}
        labelled = set(lab["instance_ids"].tolist())
        for iid in sorted(present - labelled):
            sink.error(ins_p, f"instance id {iid} occurs in the instance map but not in {lab_p.name}")
        for iid in sorted(labelled - present):
            sink.warn(lab_p, f"instance {iid} has an empty mask in this frame")
    if np.any(lab["translations"][:, 2] <= 0):
        sink.error(lab_p, "a translation has z <= 0 (behind the camera)")
    return sink.problems


def detect_layout(path: str | os.PathLike) -> str:
    """Which layout ``path`` is, as its reader names it (:func:`demopose.data.registry.detect`): ``nocs_frame``,
    ``nocs_folder`` (scene or split), ``nocs_root``, ``housecat6d_scene``, ``housecat6d_root`` or ``user_frames``.

    Raises:
        FileNotFoundError: nothing at ``path``. ValueError: no known layout.
    """
    from demopose.data.registry import detect

    return detect(path)[1]


def _nocs_root_frames(root: Path, sink: _Sink) -> list[Path]:
    frames: list[Path] = []
    for top in ("Real", "CAMERA"):
        if not (root / top).is_dir():
            continue
        lists = sorted((root / top).glob("*_list.txt"))
        for lf in lists:
            _check_split_list(sink, lf, root / top)
        listed_splits = {lf.name[: -len("_list.txt")] for lf in lists}
        for info in sorted((root / top).glob("*_synth.json")):  # a generated split always has its list
            split = info.name[: -len("_synth.json")]
            if split not in listed_splits and (root / top / split).is_dir():
                sink.error(root / top / f"{split}_list.txt", f"missing: the generated split {split!r} has no "
                                                             f"list of its frames (rerun its demopose synth command)")
        frames += list_frames(root / top)
    return frames


def _check_split_list(sink: _Sink, lf: Path, top_dir: Path) -> None:
    """A split list (``<top>/<split>_list.txt``): not empty, every entry a frame on disk, and (for a generated
    split) every complete frame on disk listed. SPD's lists of the original data leave frames out on purpose:
    unlisted frames there are a warning."""
    try:
        entries = [(n, ln.strip()) for n, ln in enumerate(lf.read_text().splitlines(), start=1) if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        sink.error(lf, f"unreadable split list ({e})")
        return
    split = lf.name[: -len("_list.txt")]
    if not entries:
        sink.error(lf, f"empty split list: no frame of split {split!r} is listed, so nothing would be trained or "
                       f"tested on it")
        return
    listed = set()
    missing = []
    for n, e in entries:
        hit = next((c for c in (top_dir / e, top_dir.parent / e) if Path(f"{c}_color.png").is_file()), None)
        if hit is None:
            missing.append((n, e))
        else:
            listed.add(hit.resolve())
    if missing:
        shown = ", ".join(f"line {n} {e!r}" for n, e in missing[:3]) + (", ..." if len(missing) > 3 else "")
        sink.error(lf, f"{len(missing)} of {len(entries)} listed frames are not on disk ({shown}; no _color.png "
                       f"under {top_dir})")
    split_dir = top_dir / split
    if not split_dir.is_dir():
        return
    generated = (top_dir / f"{split}_synth.json").is_file()
    on_disk = [f for f in list_frames(split_dir) if not generated or Path(f"{f}_meta.txt").is_file()]
    unlisted = [f for f in on_disk if f.resolve() not in listed]
    if unlisted:
        shown = ", ".join(str(f.relative_to(top_dir)) for f in unlisted[:3]) + (", ..." if len(unlisted) > 3 else "")
        msg = (f"{len(unlisted)} of {len(on_disk)} frames of {split_dir} are not in the list ({shown})")
        if generated:
            sink.error(lf, msg + ": the list disagrees with the generated frames (rerun the split's demopose "
                                 "synth command with --frames covering them to rewrite it)")
        else:
            sink.warn(lf, msg + " (SPD's lists leave some frames out on purpose)")


def _generated_size(prefix: Path) -> tuple[int, int] | None:
    """Image size recorded by the synthetic generator (``<Real|CAMERA>/<split>_synth.json``), if any:
    generated data may be rendered at other sizes than the NOCS 640×480."""
    import json

    split_dir = prefix.parent.parent
    info = split_dir.parent / f"{split_dir.name}_synth.json"
    if not info.is_file():
        return None
    try:
        cfg = json.loads(info.read_text())["config"]
        return int(cfg["width"]), int(cfg["height"])
    except (ValueError, KeyError, TypeError):
        return None


def plan_nocs_checks(path: Path, layout: str, categories: CategoryTable | None = None
                     ) -> tuple[list[Problem], list[CheckJob]]:
    """The NOCS reader's ``check`` (:class:`~demopose.data.registry.DatasetReader`): split-list problems of a
    dataset root, and one :func:`check_nocs_frame` job per frame (image size from the generator's record, else
    640×480)."""
    table = categories or NOCS_REAL
    sink = _Sink()
    if layout == "nocs_frame":
        frames = [parse_frame_path(path).prefix]
    elif layout == "nocs_root":
        frames = _nocs_root_frames(path, sink)
    else:
        frames = list_frames(path)
    jobs: list[CheckJob] = []
    for fr in frames:
        size = _generated_size(Path(fr)) or NOCS_SIZE
        jobs.append((lambda fr=fr, size=size: check_nocs_frame(fr, table, size=size), str(fr)))
    return sink.problems, jobs


def plan_housecat6d_checks(path: Path, layout: str, categories: CategoryTable | None = None
                           ) -> tuple[list[Problem], list[CheckJob]]:
    """The HouseCat6D reader's ``check``: each scene's ``intrinsics.txt`` against its first image, and one
    :func:`check_housecat6d_frame` job per frame."""
    table = categories or HOUSECAT6D
    sink = _Sink()
    scenes = [path] if layout == "housecat6d_scene" else sorted(
        c for c in path.iterdir() if c.is_dir() and is_housecat6d_scene(c))
    jobs: list[CheckJob] = []
    for s in scenes:
        rgb = sorted((s / "rgb").glob("*.png"))
        if rgb:
            try:
                img = read_png(rgb[0])
                read_housecat6d_intrinsics(s / "intrinsics.txt", img.shape[1], img.shape[0])
            except (ValueError, FileNotFoundError) as e:
                sink.error(s / "intrinsics.txt", str(e).removeprefix(f"{s / 'intrinsics.txt'}: "))
        for i in list_housecat6d_frames(s):
            jobs.append((lambda s=s, i=i: check_housecat6d_frame(s, i, table), f"{s.name}/{i}"))
    return sink.problems, jobs


def plan_user_frames_checks(path: Path, layout: str, categories: CategoryTable | None = None
                            ) -> tuple[list[Problem], list[CheckJob]]:
    """The user-frames reader's ``check``: ``camera.json`` (intrinsics, depth scale), the colour/depth pairs, and
    one job per pair reading it as ``demopose predict`` does (sizes, depth encoding; no annotations to check)."""
    from demopose.data.user_frames import list_user_frames, read_camera_json, read_user_frame

    sink = _Sink()
    cam_path = path / "camera.json"
    try:
        cam = read_camera_json(cam_path)
    except (ValueError, FileNotFoundError) as e:
        sink.error(cam_path, str(e).removeprefix(f"{cam_path}: "))
        return sink.problems, []
    try:
        pairs = list_user_frames(path)
    except FileNotFoundError as e:
        sink.error(path, str(e).removeprefix(f"{path}: "))
        return sink.problems, []

    def job(uf) -> list[Problem]:
        try:
            read_user_frame(uf, cam)
        except (ValueError, FileNotFoundError) as e:
            msg = str(e)
            file = next((f for f in (uf.depth, uf.color) if msg.startswith(f"{f}: ")), uf.color)
            return [Problem("error", Path(file), msg.removeprefix(f"{file}: "))]
        return []

    return sink.problems, [(lambda uf=uf: job(uf), uf.name) for uf in pairs]


def check_dataset(path: str | os.PathLike, categories: CategoryTable | None = None,
                  progress: bool = True, max_frames: int | None = None,
                  on_problem: Callable[[Problem], None] | None = None) -> CheckReport:
    """Check every frame of a dataset folder (any layout a registered reader recognises,
    :func:`demopose.data.registry.detect`; the reader's ``check`` lists the jobs).

    Args:
        categories: the category table (default: the reader's).
        progress: show a tqdm progress bar (on stderr) for more than 20 frames.
        max_frames: check only the first N frames.
        on_problem: called with each problem as soon as it is found.
    """
    from tqdm import tqdm

    from demopose.data.registry import detect

    p = Path(path)
    reader, layout = detect(p)
    report = CheckReport(p, layout)
    found_first, jobs = reader.check(p, layout, categories)
    if max_frames is not None:
        jobs = jobs[:max_frames]
    for pr in found_first:
        if on_problem:
            on_problem(pr)
    report.problems.extend(found_first)
    bar = tqdm(jobs, desc="check-data", unit="frame", disable=not progress or len(jobs) <= 20, leave=False)
    for job, _name in bar:
        found = job()
        for pr in found:
            if on_problem:
                on_problem(pr)
        report.problems.extend(found)
        report.frames_checked += 1
    if report.frames_checked == 0:
        report.problems.append(Problem("error", p, "no frames found"))
    return report
