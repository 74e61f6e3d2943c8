"""Generate a synthetic dataset in the NOCS layout: deterministic per seed, parallel, resumable.

Frame ``i`` is made from its own seed, ``SeedSequence([seed, crc32(split), i])`` (split into a scene
stream and a noise stream), and object models come from a :class:`~demopose.synth.scene.ModelPool`
seeded by ``(seed, split, category, k)``; so the output does not depend on the number of workers or on
the order in which frames are made, and switching the noise off leaves the scenes unchanged.

A frame is complete when its ``_meta.txt`` exists (written last). On start, incomplete frames'
files and temp files left by killed writes are removed, complete frames are skipped.

A split records its settings and the generator version of its frames (:attr:`SynthConfig.frames_version`: the
preset's version, see :data:`GENERATOR_VERSION`) in ``<CAMERA|Real>/<split>_synth.json``; resuming or extending
it with other settings or frames of another generator version is refused (its frames would mix two
generators). The split list ``<split>_list.txt`` never shrinks: a run asking for fewer frames than the split
holds is refused, and entries already listed are kept.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import multiprocessing as mp
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from demopose.categories import NOCS_REAL
from demopose.geometry.camera import CAMERA_INTRINSICS, REAL_INTRINSICS, Intrinsics
from demopose.io import write_json_atomic, write_text_atomic
from demopose.synth.noise import ColorNoiseConfig, DepthNoiseConfig, add_color_noise, add_depth_noise
from demopose.synth.render import RenderOutput, get_renderer
from demopose.synth.scene import ModelPool, Scene, SceneConfig, compose_scene
from demopose.synth.settings import PRESET_VERSIONS, PRESETS, Randomization, ShapeVariety, preset
from demopose.synth.writer import STYLES, frame_paths, remove_stray_temp_files, write_frame

__all__ = ["GENERATOR_VERSION", "GenerateReport", "SynthConfig", "SynthFrame", "frame_seed", "generate",
           "intrinsics_for", "make_frame", "make_pool"]

log = logging.getLogger(__name__)

GENERATOR_VERSION = 3
"""The newest generator version this code makes; bumped with every change of what the generator makes for
given settings (scenes, rendering, noise, file encodings). Version 2 added domain randomisation (materials,
lights, backgrounds, clutter, cameras) and sensor artefacts, version 3 object shape and size variety
(:mod:`demopose.synth.settings`). ``preset="v1"`` and ``preset="v2"`` still make those versions' frames bit
for bit.

Each split's ``_synth.json`` records the version of its *frames*, :attr:`SynthConfig.frames_version` (the
preset's version; 3 as soon as a version-3 shape setting is on), not the version of the code that wrote
them: a ``--preset v2`` split written by this code is recorded as version 2, like one written by version-2
code, and either code can extend the other's (same record, same frames). A split recorded without a version
was made by version 1. Version-2 code recorded every split, ``--preset v1`` ones included, as version 2;
such a split is extended with the version recorded, since this code makes the same frames for it."""


@dataclass(frozen=True)
class SynthConfig:
    """Settings of a generation run.

    Attributes:
        out: dataset root. frames: number of frames (indices 0..frames-1). seed: dataset seed.
        workers: processes (<= 1: in this process). style: ``camera`` or ``real``. split: split name.
        noise: sensor noise on depth and colour. width, height: image size (intrinsics are the
            style's 640×480 intrinsics scaled). models_per_category: model pool size per category.
        frames_per_scene: REAL style: frames per ``scene_<k>`` folder. renderer: ``embree``/``torch``.
        mpl_points: Poisson-disk samples per model. model_factory: module with ``make_object``,
            ``make_distractor`` (optional) and ``CATEGORIES``.
        user_meshes: optional folder of your own meshes, ``<folder>/<category>/*.{obj,glb,gltf,ply,stl,off}``
            (y up, any scale: they are canonicalised and scaled to the category's size range); each model
            of such a category is one of them with probability ``user_mesh_fraction``, else procedural.
        start_method: multiprocessing start method (None: ``fork`` where available, else ``spawn``;
            use ``spawn`` from a process that already runs threads, e.g. a training loop).
        preset: ``"v3"`` (default), ``"v2"`` or ``"v1"`` (generator version 2's or 1's frames); fills every
            sub-setting left None. scene: camera and layout ranges. randomization: materials, lights,
            backgrounds, clutter. depth, color: the sensor models (used when ``noise``). shapes: object
            size and shape variety (:class:`~demopose.synth.settings.ShapeVariety`; None: the preset's,
            which is None before version 3, i.e. version 1 and 2's builders).
    """

    out: str
    frames: int
    seed: int = 0
    workers: int = 1
    style: str = "camera"
    split: str = "train"
    noise: bool = True
    width: int = 640
    height: int = 480
    models_per_category: int = 30
    frames_per_scene: int = 100
    renderer: str = "embree"
    mpl_points: int = 1024
    model_factory: str = "demopose.synth.meshes"
    user_meshes: str | None = None
    user_mesh_fraction: float = 0.5
    start_method: str | None = None
    preset: str = "v3"
    scene: SceneConfig | None = None
    randomization: Randomization | None = None
    depth: DepthNoiseConfig | None = None
    color: ColorNoiseConfig | None = None
    shapes: ShapeVariety | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset: expected one of {PRESETS}, got {self.preset!r}")
        for name, value in zip(("scene", "randomization", "depth", "color", "shapes"), preset(self.preset)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.style not in STYLES:
            raise ValueError(f"style: expected one of {STYLES}, got {self.style!r}")
        if self.frames < 0:
            raise ValueError(f"frames: expected >= 0, got {self.frames}")
        if self.width < 8 or self.height < 8:
            raise ValueError(f"size: expected at least 8x8 pixels, got {self.width}x{self.height}")
        if not self.split or "/" in self.split:
            raise ValueError(f"split: expected a plain name such as 'train', got {self.split!r}")

    @property
    def frames_version(self) -> int:
        """The generator version whose frames these settings make: the preset's, or 3 when ``shapes`` is set."""
        return max(PRESET_VERSIONS[self.preset], 3 if self.shapes is not None else 1)

    def identity(self) -> dict:
        """The settings that determine the frames' content (must match when resuming). ``shapes`` is left
        out while None (versions 1 and 2), so that the record is the one version-2 code writes."""
        d = dataclasses.asdict(self)
        for k in ("out", "frames", "workers", "start_method"):
            d.pop(k)
        if d["shapes"] is None:
            d.pop("shapes")
        return d


@dataclass
class SynthFrame:
    """One generated frame in memory: the scene, its clean render and the (noisy) sensor images."""

    index: int
    scene: Scene
    render: RenderOutput
    color: np.ndarray
    depth: np.ndarray
    intrinsics: Intrinsics


@dataclass
class GenerateReport:
    """Outcome of :func:`generate`: frames written and skipped, wall time, frames per second."""

    written: int
    skipped: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def intrinsics_for(style: str, width: int = 640, height: int = 480) -> Intrinsics:
    """The style's intrinsics (CAMERA or REAL, defined at 640×480) scaled to ``width × height``."""
    return (CAMERA_INTRINSICS if style == "camera" else REAL_INTRINSICS).resized(width, height)


def frame_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed sequence of frame ``index`` (independent of workers and order)."""
    return np.random.SeedSequence([int(seed), zlib.crc32(split.encode()), int(index)])


def make_pool(cfg: SynthConfig) -> ModelPool:
    """The model pool of a run, from ``cfg.model_factory``."""
    mod = importlib.import_module(cfg.model_factory)
    make_object = mod.make_object
    if cfg.shapes is not None:  # version 3: a factory that takes the shape variety
        make_object = functools.partial(make_object, shapes=cfg.shapes)
    if cfg.user_meshes:
        make_object = _with_user_meshes(make_object, Path(cfg.user_meshes), cfg.user_mesh_fraction)
    return ModelPool(cfg.seed, cfg.split, cfg.models_per_category, make_object,
                     getattr(mod, "make_distractor", None), tuple(mod.CATEGORIES))


USER_MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")


def _with_user_meshes(make_object: Any, folder: Path, fraction: float) -> Any:
    """Wrap a model factory so that categories with files under ``folder/<category>/`` sometimes use them."""
    from demopose.synth.meshes import load_user_mesh

    if not folder.is_dir():
        raise FileNotFoundError(f"user_meshes: {folder} is not a folder (expected <folder>/<category>/*.obj ...)")
    files = {c.name: sorted(p for p in (folder / c.name).glob("*") if p.suffix.lower() in USER_MESH_SUFFIXES)
             for c in NOCS_REAL}
    if not any(files.values()):
        raise ValueError(f"user_meshes: no mesh files in {folder}/<category>/ for any of {NOCS_REAL.names}")

    def make(category: str, rng: np.random.Generator) -> Any:
        paths = files.get(category) or []
        if paths and rng.random() < fraction:
            diag = float(np.linalg.norm(NOCS_REAL[category].mean_size)) * rng.uniform(0.8, 1.2)
            return load_user_mesh(paths[int(rng.integers(len(paths)))], category, rng, target_size=diag)
        return make_object(category, rng)

    return make


def make_frame(cfg: SynthConfig, index: int, pool: ModelPool, renderer: Any = None) -> SynthFrame:
    """Compose, render and (if ``cfg.noise``) corrupt frame ``index``."""
    K = intrinsics_for(cfg.style, cfg.width, cfg.height)
    # the first two streams are those of version 1 (spawn(3)[:2] == spawn(2)); the third feeds what
    # version 2 adds to a scene
    s_scene, s_noise, s_extra = frame_seed(cfg.seed, cfg.split, index).spawn(3)
    scene = compose_scene(np.random.default_rng(s_scene), pool, K, cfg.scene, cfg.randomization,
                          np.random.default_rng(s_extra))
    renderer = renderer if renderer is not None else get_renderer(cfg.renderer)
    r = renderer.render(scene, K)
    color, depth = r.color, r.depth
    if cfg.noise:
        rng = np.random.default_rng(s_noise)
        depth = add_depth_noise(r.depth, r.normals, r.albedo, rng, focal=K.fx, cfg=cfg.depth, specular=r.specular)
        color = add_color_noise(r.color, rng, cfg.color)
    return SynthFrame(index=index, scene=scene, render=r, color=color, depth=depth, intrinsics=K)


def _write(cfg: SynthConfig, f: SynthFrame) -> None:
    write_frame(cfg.out, cfg.style, cfg.split, f.index, f.scene, f.color, f.depth, f.render.instance,
                f.render.nocs, f.render.handle, cfg.frames_per_scene, cfg.mpl_points, model_seed=cfg.seed)


# ---- worker process state
_STATE: dict[str, Any] = {}


def _init_worker(cfg: SynthConfig) -> None:
    # An initializer that raises makes multiprocessing respawn workers forever: keep the error and
    # raise it from the first task instead, so that it reaches the parent.
    try:
        _STATE["cfg"] = cfg
        _STATE["pool"] = make_pool(cfg)
        _STATE["renderer"] = get_renderer(cfg.renderer)
    except Exception as e:  # noqa: BLE001 - re-raised in _work
        _STATE["error"] = e


def _work(index: int) -> int:
    if "error" in _STATE:
        raise _STATE["error"]
    cfg = _STATE["cfg"]
    _write(cfg, make_frame(cfg, index, _STATE["pool"], _STATE["renderer"]))
    return index


def _split_dirs(cfg: SynthConfig) -> list[Path]:
    root = Path(cfg.out)
    if cfg.style == "camera":
        return [root / "CAMERA" / cfg.split, root / "camera_full_depths" / cfg.split, root / "gts" / cfg.split,
                root / "obj_models" / cfg.split]
    return [root / "Real" / cfg.split, root / "gts" / f"real_{cfg.split}", root / "obj_models" / f"real_{cfg.split}"]


def _info_path(cfg: SynthConfig) -> Path:
    return Path(cfg.out) / ("CAMERA" if cfg.style == "camera" else "Real") / f"{cfg.split}_synth.json"


def _check_info(cfg: SynthConfig, K: Intrinsics) -> None:
    import json

    p = _info_path(cfg)
    ident = json.loads(json.dumps(cfg.identity()))
    if p.is_file():
        try:
            info = json.loads(p.read_text())
            old = info.get("config", {})
            version = int(info.get("generator_version", 1))
        except (ValueError, TypeError, AttributeError) as e:
            raise ValueError(f"{p}: not a readable generator record ({e}); the split's settings are unknown: use "
                             f"another output folder") from None
        # the code of every version from cfg.frames_version on makes the same frames for these settings
        if not cfg.frames_version <= version <= GENERATOR_VERSION:
            raise ValueError(f"{p}: this split holds frames of generator version {version}, these settings make "
                             f"version {cfg.frames_version}'s (preset {cfg.preset!r}); frames of two versions would "
                             f"be mixed: use another output folder")
        if old != ident:
            diff = sorted(k for k in set(old) | set(ident) if old.get(k) != ident.get(k))
            shown = "; ".join(f"{k}: {old.get(k)!r} recorded, {ident.get(k)!r} now" for k in diff)
            raise ValueError(f"{p}: this split was generated with other settings ({shown}); "
                             "use the same settings to resume, or another output folder")
        recorded = version  # kept: the code that wrote it reads the same record back
    else:
        recorded = cfg.frames_version
    write_json_atomic(p, {"generator": "demopose.synth", "generator_version": recorded, "config": ident,
                          "intrinsics": {"fx": K.fx, "fy": K.fy, "cx": K.cx, "cy": K.cy,
                                         "width": K.width, "height": K.height}})


def generate(cfg: SynthConfig, progress: bool = True) -> GenerateReport:
    """Generate (or complete) ``cfg.frames`` frames under ``cfg.out``; see the module docstring.

    Raises:
        ValueError: the output already holds this split made with other settings.
    """
    t0 = time.perf_counter()
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: the output is a file, not a dataset folder (choose another output)")
    K = intrinsics_for(cfg.style, cfg.width, cfg.height)
    _check_no_shrink(cfg)
    _check_info(cfg, K)
    removed = sum(remove_stray_temp_files(d) for d in _split_dirs(cfg))
    if removed:
        log.info("removed %d temp files left by an interrupted run", removed)
    todo = []
    for i in range(cfg.frames):
        p = frame_paths(cfg.out, cfg.style, cfg.split, i, cfg.frames_per_scene)
        if p.meta.is_file():
            continue
        for f in p.all_files():
            if f.is_file():
                f.unlink()
        todo.append(i)
    skipped = cfg.frames - len(todo)
    if skipped:
        log.info("%d of %d frames are complete already; generating %d", skipped, cfg.frames, len(todo))

    from tqdm import tqdm

    pool = make_pool(cfg)  # fail early (bad factory module) in this process
    renderer = get_renderer(cfg.renderer)
    bar = tqdm(total=len(todo), unit="frame", desc=f"synth {cfg.style}/{cfg.split}", disable=not progress)
    try:
        if cfg.workers <= 1 or len(todo) <= 1:
            for i in todo:
                _write(cfg, make_frame(cfg, i, pool, renderer))
                bar.update(1)
        else:
            method = cfg.start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            ctx = mp.get_context(method)
            with ctx.Pool(min(cfg.workers, len(todo)), initializer=_init_worker, initargs=(cfg,)) as pp:
                for _ in pp.imap_unordered(_work, todo, chunksize=1):
                    bar.update(1)
    finally:
        bar.close()
        _write_list(cfg)
    return GenerateReport(written=len(todo), skipped=skipped, seconds=time.perf_counter() - t0)


def _list_file(cfg: SynthConfig) -> Path:
    return frame_paths(cfg.out, cfg.style, cfg.split, 0, cfg.frames_per_scene).list_file


def _read_list(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []


def _check_no_shrink(cfg: SynthConfig) -> None:
    """Refuse a run that asks for fewer frames than the split already holds (listed, or complete on disk)."""
    listed = set(_read_list(_list_file(cfg)))
    n = cfg.frames
    while True:  # the split's frames are 0..n-1: find the first index past it that is neither listed nor on disk
        p = frame_paths(cfg.out, cfg.style, cfg.split, n, cfg.frames_per_scene)
        if p.list_entry not in listed and not p.meta.is_file():
            break
        n += 1
    if n > cfg.frames:
        raise ValueError(f"{_list_file(cfg)}: the split {cfg.split!r} already holds {n} frames; --frames {cfg.frames} "
                         f"would shrink it. Pass --frames {n} (or more) to complete or extend it, or use another "
                         f"output folder")


def _write_list(cfg: SynthConfig) -> None:
    """Write ``<CAMERA|Real>/<split>_list.txt`` with every complete frame (atomically); for the real
    style also ``Real/<split>/mug_handle.pkl`` (NOCS format: ``scene_<k>_res`` -> per-frame 0/1, 1 when
    every mug of the frame shows its handle or there is no mug), built from the gts pickles."""
    from demopose.data.nocs_files import read_pickle
    from demopose.io import write_pickle_atomic

    lines = []
    list_file = None
    handles: dict[str, list[int]] = {}
    mug_ids = {c.id for c in NOCS_REAL if c.handle_rule}
    for i in range(cfg.frames):
        p = frame_paths(cfg.out, cfg.style, cfg.split, i, cfg.frames_per_scene)
        list_file = p.list_file
        complete = p.meta.is_file()
        if complete:
            lines.append(p.list_entry)
        if cfg.style == "real":
            hv = 1
            if complete:
                g = read_pickle(p.gts)
                mug = np.isin(g["gt_class_ids"], list(mug_ids))
                hv = int(np.all(np.asarray(g["gt_handle_visibility"])[mug]))
            handles.setdefault(f"{p.stem.parent.name}_res", []).append(hv)
    if list_file is not None:
        # never drop an entry already listed (a frame being regenerated after a kill stays listed)
        old = _read_list(list_file)
        have = set(lines)
        lines += [e for e in old if e not in have]
        order = {frame_paths(cfg.out, cfg.style, cfg.split, i, cfg.frames_per_scene).list_entry: i
                 for i in range(cfg.frames)}
        lines.sort(key=lambda e: order.get(e, cfg.frames))
        write_text_atomic(list_file, "".join(line + "\n" for line in lines))
    if handles:
        write_pickle_atomic(Path(cfg.out) / "Real" / cfg.split / "mug_handle.pkl",
                            {k: np.array(v, np.int64) for k, v in handles.items()})


def _cpu_count() -> int:  # pragma: no cover - trivial
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
