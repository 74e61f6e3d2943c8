"""Turn a run config (see ``demopose/configs/``) into datasets, a model, an optimiser and a schedule.

Configuration stays at the edges (STYLE.md §7.9): constructors take explicit arguments; this module
is the one place that reads config keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from demopose.categories import get_table
from demopose.data.instances import AugmentConfig, InstanceDataset
from demopose.data.registry import get_reader
from demopose.engine.optim import build_optimizer, build_scheduler
from demopose.models.base import Detector, PoseModel
from demopose.pipeline import MaskSource, gt_instances, published_detections

__all__ = ["build_collate", "build_frames", "build_instance_set", "build_mask_source", "build_model_from_config",
           "build_optim", "build_train_set", "data_image_size", "limit_frames", "require_data_root"]


def require_data_root(cfg: DictConfig) -> Path:
    root = cfg.data.get("root")
    if not root or root == "???":
        raise ValueError("data.root is not set: pass --data PATH (or data.root=PATH)")
    p = Path(str(root)).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"data.root: {p} is not a folder")
    return p


def build_frames(cfg: DictConfig, subset: str):
    """The frame dataset of ``subset``, opened by the reader registered as ``data.format`` (default ``nocs``;
    :mod:`demopose.data.registry`) with the category table ``data.categories`` and the reader's options from
    ``data`` (NOCS: ``data.depth``)."""
    root = require_data_root(cfg)
    table = get_table(cfg.data.categories)
    fmt = str(cfg.data.get("format", "nocs"))
    try:
        reader = get_reader(fmt)
    except ValueError as e:
        raise ValueError(f"data.format: {e}") from None
    return reader.split(root, subset, table, **{k: cfg.data.get(k) for k in reader.options})


def build_train_set(cfg: DictConfig, model: PoseModel | Detector) -> InstanceDataset:
    """``data.sample``: ``instance`` (default; per-instance point clouds) or ``frame`` (whole letterboxed
    images with detection targets, :mod:`demopose.data.detection_samples`, of the detector's input size
    ``model.image_size``: :func:`data_image_size`).

    The model says what else its instances need: ``model.image_size`` (DeMo-Pose: the letterboxed frame),
    ``model.rgb_size`` (CleanPose: the instance crop; else ``data.rgb_size``) and ``model.mesh_points``
    (the Mesh-Point Loss targets, :class:`~demopose.data.mesh_points.MeshPointSource`; cache folder
    ``data.mesh_cache``)."""
    frames = build_frames(cfg, cfg.data.train_subset)
    if cfg.data.get("sample", "instance") == "frame":
        from demopose.data.detection_samples import DetectionAugment, FrameDetectionDataset

        d_aug = {k: tuple(v) if isinstance(v, list) else v
                 for k, v in OmegaConf.to_container(cfg.data.get("augment", {}), resolve=True).items()}
        return FrameDetectionDataset(frames, data_image_size(cfg, model), train=True, augment=DetectionAugment(**d_aug),
                                     cache=bool(cfg.data.get("cache_instances", True)))
    if cfg.data.get("sample", "instance") != "instance":
        raise ValueError(f"data.sample: expected 'instance' or 'frame', got {cfg.data.sample!r}")
    return build_instance_set(cfg, frames, model, train=True)


def data_image_size(cfg: DictConfig, model: Detector) -> tuple[int, int]:
    """``(W, H)`` of the letterboxed training images of a detector: its own input size (``model.image_size``, set
    by ``model.args.input_size``). A config written before the data read it from the model may still hold
    ``data.input_size``: equal, it is ignored; different, it is an error."""
    if not isinstance(model, Detector):
        raise ValueError(f"data.sample=frame: whole-frame detection samples train a detector (mono); "
                         f"{type(model).__name__} reads instances (data.sample=instance)")
    size = tuple(int(v) for v in model.image_size)
    stale = cfg.data.get("input_size")
    if stale is not None and tuple(int(v) for v in stale) != size:
        raise ValueError(f"data.input_size {list(stale)} differs from the model's input size {list(size)} "
                         f"(model.args.input_size): the data pipeline reads the model's; remove data.input_size")
    return size


def build_instance_set(cfg: DictConfig, frames, model: PoseModel, train: bool = True) -> InstanceDataset:
    """Per-instance samples of ``frames`` with what ``model`` reads (its ``rgb_size``, ``image_size`` and, in
    training, ``mesh_points``: :class:`~demopose.models.base.PoseModel`; see :func:`build_train_set`); ``train``:
    augmentations, mask noise and the Mesh-Point Loss targets."""
    aug = AugmentConfig(**OmegaConf.to_container(cfg.data.get("augment", {}), resolve=True))
    rgb = model.rgb_size or cfg.data.get("rgb_size")  # RGB-crop models (CleanPose)
    image_size = model.image_size  # models reading the whole frame (DeMo-Pose)
    n_mesh = int(model.mesh_points) if train else 0  # MPL targets (GPV-Pose, DeMo-Pose)
    model_points = None
    if n_mesh > 0:
        from demopose.data.mesh_points import MeshPointSource

        model_points = MeshPointSource(n_mesh, cache_dir=cfg.data.get("mesh_cache"))
    return InstanceDataset(frames, n_points=int(cfg.data.n_points), train=train, augment=aug,
                           rgb_size=int(rgb) if rgb else None, image_size=image_size, model_points=model_points,
                           cache=bool(cfg.data.get("cache_instances", True)))


def build_collate(train_set) -> object:
    """The dataset's own ``collate_fn`` when it has one, else :func:`collate_instances`."""
    from demopose.data.instances import collate_instances

    return getattr(train_set, "collate_fn", collate_instances)


def build_mask_source(cfg: DictConfig) -> MaskSource:
    """``eval.masks``: ``gt`` | ``dualposenet`` | ``spd`` (published detections under data.root)."""
    kind = cfg.eval.get("masks", "gt")
    if kind == "gt":
        return gt_instances
    if kind in ("dualposenet", "spd"):
        return published_detections(require_data_root(cfg), kind)
    raise ValueError(f"eval.masks: expected 'gt', 'dualposenet' or 'spd', got {kind!r}")


def build_model_from_config(cfg: DictConfig) -> torch.nn.Module:
    """``build_model(model.name, **model.args)``: the builder reads the arguments into its config record
    (:func:`~demopose.models.registry.config_from_overrides`)."""
    from demopose.models import build_model

    args = OmegaConf.to_container(cfg.model.get("args", {}), resolve=True) or {}
    return build_model(str(cfg.model.name), **args)


def build_optim(cfg: DictConfig, model: torch.nn.Module):
    o = OmegaConf.to_container(cfg.train.optimizer, resolve=True)
    s = OmegaConf.to_container(cfg.train.scheduler, resolve=True)
    opt = build_optimizer(o.pop("name"), model.parameters(), **o)
    sched = build_scheduler(opt, s.pop("name"), total_steps=int(cfg.train.max_steps), **s)
    return opt, sched


def limit_frames(n_total: int, limit: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``limit`` frames (evenly spaced; all when ``limit`` <= 0)."""
    if limit <= 0 or limit >= n_total:
        return np.arange(n_total)
    return np.linspace(0, n_total - 1, limit).round().astype(np.int64)
