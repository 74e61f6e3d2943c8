"""Pretraining the offline distillation teacher (``demopose pretrain-teacher``): a Point-BERT on mesh shapes.

CleanPose distils a frozen ULIP-2 Point-BERT (notes/cleanpose.md §3); without those weights (offline),
notes §3.6 option 1 recommends a point encoder pretrained on our own shapes with category
classification plus a contrastive term. This module does that, with no external data:

- **shapes**: the procedural meshes of the 6 NOCS categories (:func:`demopose.synth.meshes.make_object`,
  a pool refreshed during training so that every step sees new instances) or user meshes
  ``DIR/<category>/*.obj|glb|ply|...`` (:func:`~demopose.synth.meshes.load_user_mesh`);
- **views**: ``n_points`` points drawn from a dense surface sample (area-uniform), with probability
  ``p_partial`` only from the side facing a random viewpoint (faces whose normal points at it: the
  one-sided clouds a depth camera sees), per-axis scale jitter, a uniform random rotation (the teacher
  sees camera-frame clouds in any orientation), Gaussian noise, then unit-sphere normalisation exactly
  as :class:`~demopose.models.distill.ResidualDistillation` feeds the teacher;
- **objective**: cross-entropy of a category head on both views + ``contrastive_weight`` x NT-Xent
  (SimCLR, Chen et al., ICML 2020) between the projections of two views of the same mesh
  (temperature 0.1). Only the encoder is kept: its output (``[cls token; max token]``, ``2 * width``)
  is the distilled feature, saved with :func:`~demopose.models.point_teacher.save_teacher`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from demopose.geometry.rotation import random_rotation
from demopose.models.distill import unit_sphere
from demopose.models.point_teacher import build_encoder
from demopose.models.pointbert import PointBERT

__all__ = ["MeshPool", "PretrainConfig", "PretrainHeads", "config_dict", "nt_xent", "pretrain_teacher",
           "sample_views"]

log = logging.getLogger(__name__)

_MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")


@dataclass
class PretrainConfig:
    """Teacher pretraining settings.

    Attributes:
        arch: a :data:`~demopose.models.point_teacher.TEACHER_ARCHS` name.
        meshes: ``"synthetic"`` (procedural, refreshed) or a folder ``DIR/<category>/*.obj|glb|ply|...``.
        steps, batch_size (meshes per step; two views each), lr (AdamW: linear warm-up over the first
            ``warmup`` fraction of the steps, then cosine decay to 5 %), weight_decay, grad_clip (norm).
        n_points: points per view; dense_points: surface samples kept per mesh.
        pool_per_category: meshes per category in the pool; refresh_per_step: pool entries replaced by
            new procedural meshes every step (synthetic only).
        p_partial: probability that a view keeps only the side facing a random viewpoint.
        scale_jitter: per-axis scale factor range; noise: Gaussian noise std, in units of the object's
            bounding radius.
        contrastive_weight, temperature: NT-Xent term.
        val_meshes_per_category: held-out meshes (another seed) for the accuracy check.
        seed: everything is deterministic given it (on one device).
    """

    arch: str = "tiny"
    meshes: str = "synthetic"
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.1
    grad_clip: float = 1.0
    n_points: int = 512
    dense_points: int = 4096
    pool_per_category: int = 32
    refresh_per_step: int = 2
    p_partial: float = 0.8
    scale_jitter: tuple[float, float] = (0.8, 1.2)
    noise: float = 0.01
    contrastive_weight: float = 1.0
    temperature: float = 0.1
    val_meshes_per_category: int = 8
    seed: int = 0


class MeshPool:
    """Dense surface samples of a pool of category meshes: ``points (M, S, 3)``, ``normals (M, S, 3)``
    (metres, NOCS canonical frame), ``labels (M,)`` 0-based category indices (NOCS order)."""

    def __init__(self, categories: Sequence[str], dense_points: int, seed: int = 0) -> None:
        self.categories = tuple(categories)
        self.dense_points = dense_points
        self.rng = np.random.default_rng(seed)
        self.points = torch.zeros(0, dense_points, 3)
        self.normals = torch.zeros(0, dense_points, 3)
        self.labels = torch.zeros(0, dtype=torch.long)
        self.names: list[str] = []

    def _sample(self, mesh) -> tuple[torch.Tensor, torch.Tensor]:
        from demopose.geometry.sampling import sample_surface

        pts, face = sample_surface(mesh, self.dense_points, self.rng)
        nrm = np.asarray(mesh.face_normals)[face]
        return torch.from_numpy(pts).float(), torch.from_numpy(nrm).float()

    def _add(self, items: list[tuple[str, int, Any]]) -> None:
        samples = [self._sample(mesh) for _, _, mesh in items]
        self.points = torch.cat([self.points, torch.stack([s[0] for s in samples])])
        self.normals = torch.cat([self.normals, torch.stack([s[1] for s in samples])])
        self.labels = torch.cat([self.labels, torch.tensor([c for _, c, _ in items], dtype=torch.long)])
        self.names += [n for n, _, _ in items]

    @classmethod
    def synthetic(cls, per_category: int, dense_points: int, seed: int = 0) -> MeshPool:
        """``per_category`` new procedural meshes of each NOCS category."""
        from demopose.synth.meshes import CATEGORIES

        pool = cls(CATEGORIES, dense_points, seed)
        pool._add([pool._procedural(c) for c in range(len(CATEGORIES)) for _ in range(per_category)])
        return pool

    def _procedural(self, c: int) -> tuple[str, int, Any]:
        from demopose.synth.meshes import make_object

        obj = make_object(self.categories[c], self.rng)
        return obj.name, c, obj.mesh

    def refresh(self, n: int) -> None:
        """Replace ``n`` random entries by new procedural meshes of the same categories."""
        for j in self.rng.choice(len(self.labels), size=min(n, len(self.labels)), replace=False):
            name, c, mesh = self._procedural(int(self.labels[j]))
            self.points[j], self.normals[j] = self._sample(mesh)
            self.names[j] = name

    @classmethod
    def from_folder(cls, root: str | Path, dense_points: int, seed: int = 0) -> MeshPool:
        """Meshes under ``root/<category>/`` for each NOCS category folder present (others are ignored).

        Raises:
            FileNotFoundError: ``root`` is not a folder. ValueError: fewer than two categories with meshes.
        """
        from demopose.synth.meshes import CATEGORIES, load_user_mesh

        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"--meshes {root}: not a folder (expected {root}/<category>/*.obj|glb|ply)")
        pool = cls(CATEGORIES, dense_points, seed)
        items = []
        for c, name in enumerate(CATEGORIES):
            for f in sorted((root / name).glob("*")) if (root / name).is_dir() else []:
                if f.suffix.lower() in _MESH_SUFFIXES:
                    items.append((f.stem, c, load_user_mesh(f, name, pool.rng).mesh))
        found = sorted({CATEGORIES[c] for _, c, _ in items})
        if len(found) < 2:
            raise ValueError(f"--meshes {root}: expected meshes of at least two categories in sub-folders named "
                             f"after them ({', '.join(CATEGORIES)}); found {found or 'none'}")
        pool._add(items)
        return pool

    def __len__(self) -> int:
        return len(self.labels)


def sample_views(points: torch.Tensor, normals: torch.Tensor, n_points: int, generator: torch.Generator,
                 p_partial: float = 0.8, scale_jitter: tuple[float, float] = (0.8, 1.2),
                 noise: float = 0.01) -> torch.Tensor:
    """Augmented, unit-sphere normalised views of dense surface samples (vectorised over the batch).

    Args:
        points, normals: ``(B, S, 3)`` dense samples and their face normals (object frame).
        n_points: points per view (drawn with replacement from the kept side).
        p_partial: probability of keeping only points whose normal faces a random viewpoint.
        scale_jitter: per-axis scale range; noise: Gaussian std relative to the bounding radius.

    Returns:
        ``(B, n_points, 3)`` views, centroid at 0, largest radius 1.
    """
    B, S, _ = points.shape
    dev = points.device
    view = F.normalize(torch.randn(B, 1, 3, generator=generator, device=dev), dim=-1)
    facing = (normals * view).sum(-1) > 0  # (B, S)
    partial = torch.rand(B, 1, generator=generator, device=dev) < p_partial
    keep = torch.where(partial & facing.any(1, keepdim=True), facing, torch.ones_like(facing))
    idx = torch.multinomial(keep.float(), n_points, replacement=True, generator=generator)
    p = torch.gather(points, 1, idx[..., None].expand(-1, -1, 3))
    lo, hi = scale_jitter
    p = p * (lo + (hi - lo) * torch.rand(B, 1, 3, generator=generator, device=dev))
    R = random_rotation(B, generator=generator, dtype=points.dtype).to(dev)
    p = p @ R.transpose(1, 2)
    radius = (p - p.mean(1, keepdim=True)).norm(dim=-1).amax(1)[:, None, None]
    p = p + noise * radius * torch.randn(p.shape, generator=generator, device=dev)
    return unit_sphere(p)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy: each view must pick its partner among the other
    ``2B - 1`` views. ``(B, E), (B, E) -> ()``."""
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    B = z1.shape[0]
    target = torch.cat([torch.arange(B, 2 * B), torch.arange(B)]).to(z.device)
    return F.cross_entropy(sim, target)


class PretrainHeads(nn.Module):
    """Training-only heads on the encoder feature: category logits and the contrastive projection."""

    def __init__(self, dim: int, num_classes: int, proj: int = 128) -> None:
        super().__init__()
        self.cls = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, num_classes))
        self.proj = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, proj))

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls(f), self.proj(f)


@torch.no_grad()
def _accuracy(encoder: PointBERT, heads: PretrainHeads, views: torch.Tensor, labels: torch.Tensor,
              batch: int = 64) -> float:
    encoder.eval()
    heads.eval()
    pred = torch.cat([heads(encoder(views[i:i + batch]))[0].argmax(1) for i in range(0, len(views), batch)])
    encoder.train()
    heads.train()
    return float((pred == labels).float().mean())


def pretrain_teacher(cfg: PretrainConfig, device: torch.device | str = "cpu", progress: bool = True,
                     log_every: int = 50) -> tuple[PointBERT, dict[str, Any]]:
    """Pretrain a Point-BERT teacher (module docstring).

    Returns:
        the encoder (eval mode) and the training record: ``loss`` / ``loss_cls`` / ``loss_con`` per step,
        ``val_acc`` (held-out meshes, at every ``log_every`` steps and at the end: ``[(step, acc)]``),
        ``seconds``.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    synthetic = cfg.meshes == "synthetic"
    if synthetic:
        pool = MeshPool.synthetic(cfg.pool_per_category, cfg.dense_points, seed=cfg.seed)
        val = MeshPool.synthetic(cfg.val_meshes_per_category, cfg.dense_points, seed=cfg.seed + 10_007)
    else:
        pool = MeshPool.from_folder(cfg.meshes, cfg.dense_points, seed=cfg.seed)
        val = pool  # no held-out meshes from a user folder: accuracy on new views of the training meshes
    gv = torch.Generator().manual_seed(cfg.seed + 1)
    val_views = sample_views(val.points, val.normals, cfg.n_points, gv, cfg.p_partial, cfg.scale_jitter, cfg.noise)
    val_views, val_labels = val_views.to(device), val.labels.to(device)

    encoder = build_encoder(cfg.arch).to(device).train()
    heads = PretrainHeads(encoder.out_channels, len(pool.categories)).to(device)
    params = list(encoder.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * cfg.steps))

    def lr_factor(s: int) -> float:  # linear warm-up, then cosine decay to 5 %
        if s < warm:
            return (s + 1) / warm
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s - warm, cfg.steps) / max(cfg.steps - warm, 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    rec: dict[str, Any] = {"loss": [], "loss_cls": [], "loss_con": [], "val_acc": []}
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="pretrain-teacher", disable=not progress)
    for step in bar:
        if synthetic and cfg.refresh_per_step:
            pool.refresh(cfg.refresh_per_step)
        idx = torch.randint(len(pool), (cfg.batch_size,), generator=g)
        pts, nrm, y = pool.points[idx], pool.normals[idx], pool.labels[idx].to(device)
        v1, v2 = (sample_views(pts, nrm, cfg.n_points, g, cfg.p_partial, cfg.scale_jitter, cfg.noise).to(device)
                  for _ in range(2))
        logits, z = heads(encoder(torch.cat([v1, v2])))
        l_cls = F.cross_entropy(logits, torch.cat([y, y]))
        l_con = nt_xent(*z.chunk(2), cfg.temperature)
        loss = l_cls + cfg.contrastive_weight * l_con
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        for k, v in (("loss", loss), ("loss_cls", l_cls), ("loss_con", l_con)):
            rec[k].append(float(v.detach()))
        if log_every and (step + 1) % log_every == 0 and step + 1 < cfg.steps:
            acc = _accuracy(encoder, heads, val_views, val_labels)
            rec["val_acc"].append((step + 1, acc))
            bar.set_postfix(loss=f"{np.mean(rec['loss'][-log_every:]):.3f}", val_acc=f"{acc:.2f}")
            log.info("step %d: loss %.4f (cls %.4f, contrastive %.4f), held-out accuracy %.3f", step + 1,
                     np.mean(rec["loss"][-log_every:]), np.mean(rec["loss_cls"][-log_every:]),
                     np.mean(rec["loss_con"][-log_every:]), acc)
    rec["val_acc"].append((cfg.steps, _accuracy(encoder, heads, val_views, val_labels)))
    rec["seconds"] = time.perf_counter() - t0
    rec["val_meshes"] = len(val)
    rec["val_held_out"] = synthetic
    return encoder.eval(), rec


def config_dict(cfg: PretrainConfig) -> dict[str, Any]:
    """``cfg`` as plain data (for the checkpoint's meta)."""
    return asdict(cfg)
