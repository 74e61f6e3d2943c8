"""AG-Pose keypoint network and CleanPose on top of it.

- AG-Pose: Lin et al., "Instance-Adaptive and Geometric-Aware Keypoint Learning for Category-Level 6D
  Object Pose Estimation", CVPR 2024 (Leeiieeo/AG-Pose).
- CleanPose: Lin et al., "CleanPose: Category-Level Object Pose Estimation via Causal Learning and
  Knowledge Distillation", ICCV 2025 (chrislin0621/CleanPose): AG-Pose + the front-door module
  (:mod:`demopose.models.causal`) after the aggregator + residual distillation of the point encoder
  (:mod:`demopose.models.distill`). With ``causal=False, distill=False`` this *is* AG-Pose.

Architecture and constants from notes/cleanpose.md §1 (read from the released code). For ``B``
instances of ``N`` points (metres, camera frame):

1. centre on the centroid ``c``; training: online SE(3)/scale augmentation ``((p - Δt)/Δs) ΔR``
   (±20° per axis, ±2 cm, ×[0.8, 1.2]) and 1 mm point noise clipped at 5 mm; predictions are mapped
   back, so every loss is in the camera frame;
2. per-point features ``[PointNet++ MSG (128); RGB (128)]``, RGB sampled at each point's crop pixel
   from a pluggable encoder (:mod:`demopose.models.rgb_encoder`) and projected to 128;
3. IAKD: ``K = 96`` learnable queries, 4 pre-LN decoder blocks (cross-attention to the points,
   self-attention, FFN), heat map ``softmax_n(cos(q_k, F_n) / 0.1)``, keypoints ``H p`` and
   features ``H F``;
4. GAFA (2 blocks, 16 then 32 neighbours): local kNN attention with relative-position codes,
   global mixing with absolute + mean relative keypoint position codes, output MLP;
5. CleanPose front-door module (optional);
6. heads: keypoint NOCS by 64-bin classification per axis and class, reconstruction (10 offsets per
   keypoint, training signal), pose/size regression (6D rotation with y primary, translation offset
   from the centroid, absolute metric size).

``forward(batch)`` reads ``points (B, N, 3)``, ``class_ids (B,)`` 1-based, and with an RGB branch
``rgb (B, 3, S, S)`` in [0, 1] and ``rgb_pixels (B, N, 2)`` (``InstanceDataset(rgb_size=S)``); when
``rgb`` is missing the RGB features are zero. Outputs (camera frame): ``kpt_3d (B, K, 3)``,
``kpt_nocs (B, K, 3)``, ``heatmap (B, K, N)``; training only: ``recon (B, 10K, 3)``,
``recon_delta (B, K, 10, 3)``, ``points_loss (B, N, 3)`` and the distillation pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from demopose._checks import check_shape
from demopose.categories import CategoryTable, get_table
from demopose.geometry.symmetry import canonicalize_y_symmetric
from demopose.layers.knn import gather_points, knn_indices
from demopose.layers.mlp import PointMLP
from demopose.layers.pointnet2 import PointNet2MSG
from demopose.models.base import PosePrediction
from demopose.models.causal import CrossAttentionBlock, FrontDoorModule, SelfAttentionBlock, init_dictionary
from demopose.models.registry import register_model
from demopose.models.rgb_encoder import build_rgb_encoder, sample_at_pixels

__all__ = ["AGPose", "AGPoseConfig", "AGPoseLossWeights", "agpose_loss", "rotation_from_6d_y"]


@dataclass(frozen=True)
class AGPoseLossWeights:
    """Released loss weights (notes/cleanpose.md §1.9)."""

    pose: float = 0.3
    cd: float = 2.0
    nocs: float = 2.0
    div: float = 10.0
    recon: float = 15.0
    delta: float = 1.0
    kd: float = 0.01


@dataclass(frozen=True)
class AGPoseConfig:
    """Architecture; defaults are the released CleanPose (NOCS) settings.

    Attributes:
        category_table: classes (6 for NOCS, 10 for HouseCat6D).
        dim: keypoint feature width (256 = 128 point + 128 RGB).
        num_kpts: keypoints / queries (96).
        pn2_*: PointNet++ MSG levels (:class:`~demopose.layers.pointnet2.PointNet2MSG`).
        rgb_encoder: ``cnn`` | ``dinov2_vits14`` | ``dinov2_tiny`` | ``none``; rgb_checkpoint: local weights.
        rgb_size: crop side the model asks the data for (224).
        iakd_blocks, heads, ffn: keypoint detector decoder (4 blocks, 4 heads, FFN 256).
        heat_temperature: 0.1; gafa_k: neighbours per GAFA block (16, 32); local_temperature: 5.
        nocs_bins: 64; recon_offsets: 10 per keypoint.
        online_aug: the training-time SE(3)/scale augmentation inside the model.
        causal: CleanPose front-door module; dict_size (80), select_num (12), fd_* sizes,
            dict_update (``fifo``/``momentum``), dict_enqueue (``output``/``input``), dict_init (a
            file of ``demopose build-dictionary`` filling the dictionary at construction; a checkpoint
            loaded afterwards overrides it).
        distill: residual distillation; teacher (``pointbert``, ``tiny``), teacher_checkpoint,
            teacher_dim (768), teacher_cache.
        loss: :class:`AGPoseLossWeights`.
    """

    category_table: str = "nocs_real"
    dim: int = 256
    num_kpts: int = 96
    pn2_npoints: tuple = (512, 256, 128, 64)
    pn2_radii: tuple = ((0.01, 0.02), (0.02, 0.04), (0.04, 0.08), (0.08, 0.16))
    pn2_nsamples: tuple = ((16, 32),) * 4
    pn2_sa_mlps: tuple = (((16, 16, 32), (16, 16, 32)), ((32, 32, 64), (32, 32, 64)),
                          ((64, 64, 128), (64, 64, 128)), ((128, 128, 256), (128, 128, 256)))
    pn2_fp_mlps: tuple = ((512, 512), (256, 256), (256, 256), (128, 128))
    rgb_encoder: str = "cnn"
    rgb_checkpoint: str | None = None
    rgb_size: int = 224
    iakd_blocks: int = 4
    heads: int = 4
    ffn: int = 256
    heat_temperature: float = 0.1
    gafa_k: tuple = (16, 32)
    local_temperature: float = 5.0
    pe_hidden: tuple = (64, 256)
    head_hidden: int = 512
    nocs_bins: int = 64
    recon_offsets: int = 10
    online_aug: bool = True
    aug_angle_deg: float = 20.0
    aug_shift: float = 0.02
    aug_scale: tuple = (0.8, 1.2)
    point_noise: float = 0.001
    causal: bool = True
    dict_size: int = 80
    select_num: int = 12
    fd_self_blocks: int = 2
    fd_cross_blocks: int = 4
    dict_update: str = "fifo"
    dict_momentum: float = 0.99
    dict_enqueue: str = "output"
    dict_init: str | None = None
    distill: bool = True
    teacher: str = "pointbert"
    teacher_checkpoint: str | None = None
    teacher_dim: int = 768
    teacher_cache: bool = False
    loss: AGPoseLossWeights = field(default_factory=AGPoseLossWeights)

    @classmethod
    def small(cls, **overrides) -> AGPoseConfig:
        """A narrow CPU preset (64-wide, 32 keypoints, 3 PointNet++ levels, tiny teacher)."""
        base = cls(dim=64, num_kpts=32, pn2_npoints=(256, 64, 16),
                   pn2_radii=((0.02, 0.04), (0.04, 0.08), (0.08, 0.16)), pn2_nsamples=((8, 16),) * 3,
                   pn2_sa_mlps=(((16, 16), (16, 16)), ((32, 32), (32, 32)), ((64, 64), (64, 64))),
                   pn2_fp_mlps=((64,), (64,), (32,)), rgb_encoder="cnn", rgb_size=64, iakd_blocks=2,
                   ffn=64, gafa_k=(8, 16), pe_hidden=(32, 64), head_hidden=128, nocs_bins=32,
                   dict_size=16, select_num=4, fd_self_blocks=1, fd_cross_blocks=1, teacher="tiny",
                   teacher_dim=64)
        return replace(base, **overrides)


def rotation_from_6d_y(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CleanPose's 6D rotation with y primary: ``y = b/|b|, z = (a x y)/|.|, x = y x z``, ``R = [x y z]``.
    ``(B, 3), (B, 3) -> (B, 3, 3)`` (columns = object axes in the camera frame)."""
    y = F.normalize(b, dim=-1)
    z = F.normalize(torch.cross(a, y, dim=-1), dim=-1)
    x = torch.cross(y, z, dim=-1)
    return torch.stack([x, y, z], dim=-1)


def _mlp(widths: tuple[int, ...], in_c: int, bn: bool = True) -> nn.Module:
    """Per-point MLP over ``(..., C)``; BN+ReLU between layers, plain last layer."""
    return PointMLP(in_c, widths, last_act=False) if bn else nn.Sequential(
        *[m for a, b in zip((in_c, *widths[:-1]), widths) for m in (nn.Linear(a, b), nn.ReLU())][:-1])


class KeypointDetector(nn.Module):
    """IAKD: queries decode against point features; cosine heat map. ``F (B, N, D), p (B, N, 3) ->
    heat (B, K, N), kpt (B, K, 3), kfeat (B, K, D)``."""

    def __init__(self, dim: int, num_kpts: int, blocks: int, heads: int, ffn: int, temperature: float) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.empty(num_kpts, dim))
        nn.init.xavier_uniform_(self.queries)
        self.blocks = nn.ModuleList(CrossAttentionBlock(dim, heads, ffn) for _ in range(blocks))
        self.temperature = temperature

    def forward(self, feats: torch.Tensor, pts: torch.Tensor):
        q = self.queries.unsqueeze(0).expand(feats.shape[0], -1, -1)
        for blk in self.blocks:
            q = blk(q, feats)
        logits = torch.einsum("bkd,bnd->bkn", F.normalize(q, dim=-1), F.normalize(feats, dim=-1))
        heat = torch.softmax(logits / self.temperature, dim=-1)
        return heat, heat @ pts, heat @ feats


class GAFABlock(nn.Module):
    """Geometric-aware feature aggregation (AG-Pose): local kNN attention, global mixing, output MLP.
    ``kpt (B, K, 3), kfeat (B, K, D), pts (B, N, 3), feats (B, N, D) -> (B, K, D)``."""

    def __init__(self, dim: int, k: int, pe_hidden: tuple[int, int], temperature: float) -> None:
        super().__init__()
        self.k, self.temperature = k, temperature
        pe = (*pe_hidden, dim)
        self.pe_local = _mlp(pe, 3)
        self.fuse = _mlp((dim, dim), 2 * dim)
        self.fc_in = _mlp((dim, dim), dim)
        self.pe_abs, self.pe_rel = _mlp(pe, 3), _mlp(pe, 3)
        self.global_mlp = PointMLP(3 * dim, (dim, dim))
        self.out = _mlp((dim, dim), dim)

    def forward(self, kpt, kfeat, pts, feats):
        kpt = kpt.detach()
        idx = knn_indices(kpt, pts, k=min(self.k, pts.shape[1]))  # (B, K, k)
        nbr = self.fuse(torch.cat([gather_points(feats, idx),
                                   self.pe_local(kpt.unsqueeze(2) - gather_points(pts, idx))], dim=-1))
        query = self.fc_in(kfeat)
        w = torch.softmax(F.cosine_similarity(query.unsqueeze(2), nbr, dim=-1) / self.temperature, dim=-1)
        x = torch.relu((w.unsqueeze(-1) * nbr).sum(2) + kfeat)
        pos = self.pe_abs(kpt) + self.pe_rel(kpt.unsqueeze(2) - kpt.unsqueeze(1)).mean(2)
        g = torch.cat([x, x.mean(1, keepdim=True).expand_as(x), pos], dim=-1)
        x = torch.relu(self.global_mlp(g) + x)
        return torch.relu(self.out(x) + x)


class NocsHead(nn.Module):
    """Keypoint NOCS by per-class 64-bin classification per axis. ``(B, K, D), cls (B,) -> (B, K, 3)``
    in [-0.5, 0.5]."""

    def __init__(self, dim: int, hidden: int, num_classes: int, bins: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.bins, self.num_classes = bins, num_classes
        self.pre = _mlp((hidden, hidden, dim), dim)
        self.attn = nn.ModuleList(SelfAttentionBlock(dim, heads, ffn) for _ in range(2))
        self.post = _mlp((hidden, hidden, num_classes * 3 * bins), dim)
        self.register_buffer("centres", (torch.arange(bins) + 0.5) / bins - 0.5, persistent=False)

    def forward(self, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        for blk in self.attn:
            x = blk(x)
        B, K, _ = x.shape
        logits = self.post(x).view(B, K, self.num_classes, 3, self.bins)
        logits = logits[torch.arange(B, device=x.device), :, cls]  # (B, K, 3, bins)
        return (torch.softmax(logits, dim=-1) * self.centres).sum(-1)


class Reconstructor(nn.Module):
    """Dense reconstruction from keypoints (training signal). ``kpt (B, K, 3), kfeat (B, K, D) ->
    offsets (B, K, R, 3)``."""

    def __init__(self, dim: int, hidden: int, n_off: int) -> None:
        super().__init__()
        self.n_off = n_off
        self.pe = _mlp((64, 128, dim), 3)
        self.feat = _mlp((dim, dim), dim)
        self.dec = _mlp((hidden, hidden, 3 * n_off), 2 * dim)

    def forward(self, kpt: torch.Tensor, kfeat: torch.Tensor) -> torch.Tensor:
        f = self.pe(kpt) + self.feat(kfeat)
        g = f.mean(1, keepdim=True).expand_as(f)
        return self.dec(torch.cat([g, f], dim=-1)).view(*kpt.shape[:2], self.n_off, 3)


class PoseHead(nn.Module):
    """Pose/size regression from keypoints, their NOCS (detached) and features.
    ``-> r6 (B, 6), t (B, 3), s (B, 3)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.kpt_enc, self.nocs_enc = _mlp((32, 64), 3), _mlp((32, 64), 3)
        self.mlp1 = PointMLP(dim + 128, (hidden, dim))
        self.mlp2 = PointMLP(2 * dim, (hidden, hidden))
        self.heads = nn.ModuleList(_mlp((hidden, dim, o), hidden) for o in (6, 3, 3))

    def forward(self, kpt, nocs, kfeat):
        x = self.mlp1(torch.cat([self.kpt_enc(kpt), self.nocs_enc(nocs.detach()), kfeat], dim=-1))
        x = torch.cat([x, x.mean(1, keepdim=True).expand_as(x)], dim=-1)
        x = self.mlp2(x).mean(1)
        return tuple(h(x) for h in self.heads)


def _euler_xyz(angles: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` radians -> ``Rx @ Ry @ Rz`` ``(B, 3, 3)``."""
    c, s = angles.cos(), angles.sin()
    o, z = torch.ones_like(c[:, 0]), torch.zeros_like(c[:, 0])
    rx = torch.stack([o, z, z, z, c[:, 0], -s[:, 0], z, s[:, 0], c[:, 0]], -1).view(-1, 3, 3)
    ry = torch.stack([c[:, 1], z, s[:, 1], z, o, z, -s[:, 1], z, c[:, 1]], -1).view(-1, 3, 3)
    rz = torch.stack([c[:, 2], -s[:, 2], z, s[:, 2], c[:, 2], z, z, z, o], -1).view(-1, 3, 3)
    return rx @ ry @ rz


class AGPose(nn.Module):
    """AG-Pose / CleanPose (module docstring). ``model.rgb_size`` tells the data pipeline which crop to make."""

    image_size, mesh_points, own_detector = None, 0, None  # the PoseModel contract (models/base.py)

    @property
    def categories(self) -> CategoryTable:
        return self.table

    def __init__(self, config: AGPoseConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or AGPoseConfig()
        self.table: CategoryTable = get_table(cfg.category_table)
        self.num_classes = nc = len(self.table)
        half = cfg.dim // 2
        self.point_encoder = PointNet2MSG(cfg.pn2_npoints, cfg.pn2_radii, cfg.pn2_nsamples, cfg.pn2_sa_mlps,
                                          cfg.pn2_fp_mlps)
        self.point_proj = nn.Linear(self.point_encoder.out_channels, half) \
            if self.point_encoder.out_channels != half else nn.Identity()
        if cfg.rgb_encoder == "none":
            self.rgb_encoder, self.rgb_size = None, None
        else:
            self.rgb_encoder = build_rgb_encoder(cfg.rgb_encoder, cfg.rgb_checkpoint)
            self.rgb_size = cfg.rgb_size
        self.rgb_proj = nn.Linear(self.rgb_encoder.out_channels if self.rgb_encoder is not None else 1, half)
        self.detector = KeypointDetector(cfg.dim, cfg.num_kpts, cfg.iakd_blocks, cfg.heads, cfg.ffn,
                                         cfg.heat_temperature)
        self.gafa = nn.ModuleList(GAFABlock(cfg.dim, k, cfg.pe_hidden, cfg.local_temperature) for k in cfg.gafa_k)
        self.front_door = FrontDoorModule(nc, cfg.dim, cfg.dict_size, cfg.select_num, cfg.heads, cfg.ffn,
                                          cfg.fd_self_blocks, cfg.fd_cross_blocks, cfg.dict_update,
                                          cfg.dict_momentum, cfg.dict_enqueue) if cfg.causal else None
        if self.front_door is not None and cfg.dict_init:
            init_dictionary(self.front_door, cfg.dict_init, name="front_door")
        self.nocs_head = NocsHead(cfg.dim, cfg.head_hidden, nc, cfg.nocs_bins, cfg.heads, cfg.ffn)
        self.reconstructor = Reconstructor(cfg.dim, cfg.head_hidden, cfg.recon_offsets)
        self.pose_head = PoseHead(cfg.dim, cfg.head_hidden)
        if cfg.distill:
            from demopose.models.distill import ResidualDistillation, build_teacher

            self.distill = ResidualDistillation(half, build_teacher(cfg.teacher, cfg.teacher_checkpoint,
                                                                    cfg.teacher_dim), cache=cfg.teacher_cache)
        else:
            self.distill = None
        sym = [False] + [self.table.is_y_symmetric(c.id, True) for c in self.table]
        self.register_buffer("y_symmetric_table", torch.tensor(sym), persistent=False)

    # ------------------------------------------------------------------------------------------
    def _augment(self, pts: torch.Tensor, generator: torch.Generator | None):
        with torch.autocast(pts.device.type, enabled=False):  # geometry stays float32 under bf16 autocast
            return self._augment_float32(pts.float(), generator)

    def _augment_float32(self, pts: torch.Tensor, generator: torch.Generator | None):
        B, dev, dt = pts.shape[0], pts.device, pts.dtype
        cfg = self.config

        def u(lo, hi, *shape):
            return torch.rand(*shape, device=dev, dtype=dt, generator=generator) * (hi - lo) + lo

        a = math.radians(cfg.aug_angle_deg)
        dR = _euler_xyz(u(-a, a, B, 3))
        dt_ = u(-cfg.aug_shift, cfg.aug_shift, B, 1, 3)
        ds = u(*cfg.aug_scale, B, 1, 1)
        noise = (torch.randn(pts.shape, device=dev, dtype=dt, generator=generator) * cfg.point_noise)
        pts = (pts + noise.clamp(-5 * cfg.point_noise, 5 * cfg.point_noise) - dt_) / ds @ dR
        return pts, dR, dt_, ds

    def forward(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> PosePrediction:
        for key in ("points", "class_ids"):
            if key not in batch:
                raise KeyError(f"AGPose batch: missing key {key!r} (needs 'points' and 'class_ids')")
        points = batch["points"]
        dims = check_shape(points, "B N 3", "batch['points']")
        cls = torch.as_tensor(batch["class_ids"], device=points.device).long().reshape(-1) - 1
        check_shape(cls, "B", "batch['class_ids']", dims)
        if cls.numel() and (int(cls.min()) < 0 or int(cls.max()) >= self.num_classes):
            raise ValueError(f"batch['class_ids']: expected 1-based ids in 1..{self.num_classes}, "
                             f"got {(cls + 1).tolist()}")
        B, N, _ = points.shape
        c = points.mean(1, keepdim=True)
        pts = points - c
        aug = self.training and self.config.online_aug
        if aug:
            pts, dR, dt_, ds = self._augment(pts, generator)
        pfeat = self.point_proj(self.point_encoder(pts))  # (B, N, D/2)
        if self.rgb_encoder is not None and "rgb" in batch:
            fmap = self.rgb_encoder(batch["rgb"].to(pts.dtype))
            rfeat = self.rgb_proj(sample_at_pixels(fmap, batch["rgb_pixels"].to(pts.dtype), batch["rgb"].shape[-1]))
        else:
            rfeat = pfeat.new_zeros(B, N, pfeat.shape[-1])
        feats = torch.cat([pfeat, rfeat], dim=-1)
        heat, kpt, kfeat = self.detector(feats, pts)
        for blk in self.gafa:
            kfeat = blk(kpt, kfeat, pts, feats)
        if self.front_door is not None:
            kfeat = self.front_door(kfeat, cls, generator)
        kpt_nocs = self.nocs_head(kfeat, cls)
        r6, t, s = self.pose_head(kpt, kpt_nocs, kfeat)
        delta = self.reconstructor(kpt, kfeat) if self.training else None
        # geometry in float32 (the network's outputs are bf16 under autocast)
        r6, t, s, kpt, kpt_nocs, heat = (v.float() for v in (r6, t, s, kpt, kpt_nocs, heat))
        delta = delta.float() if delta is not None else None
        geometry = torch.autocast(points.device.type, enabled=False)
        with geometry:
            R = rotation_from_6d_y(r6[:, :3], r6[:, 3:])
        outputs: dict[str, torch.Tensor] = {"heatmap": heat, "kpt_nocs": kpt_nocs}

        def to_cam(x):  # (B, M, 3) augmented centred frame -> camera frame
            with geometry:
                if aug:
                    x = ds * (x @ dR.transpose(1, 2)) + dt_
                return x + c

        if aug:
            with geometry:
                R = dR @ R
                t = dt_[:, 0] + ds[:, 0] * (dR @ t.unsqueeze(-1))[..., 0]
                s = ds[:, 0] * s
        t = t + c[:, 0]
        outputs["kpt_3d"] = to_cam(kpt)
        if self.training:
            outputs["recon"] = to_cam((kpt.unsqueeze(2) + delta).flatten(1, 2))
            outputs["recon_delta"] = delta * (ds.unsqueeze(-1) if aug else 1)
            outputs["points_loss"] = to_cam(pts)  # the noisy points the network saw, camera frame
            if self.distill is not None:
                g = pfeat.mean(1)
                outputs["kd_student"], outputs["kd_teacher"] = self.distill(g, pts, batch.get("instance_index"))
        return PosePrediction(R=R, t=t, size=s, score=None, outputs=outputs)

    def loss(self, pred: PosePrediction, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """All weighted losses (:func:`agpose_loss`)."""
        return agpose_loss(pred, batch, self.y_symmetric_table, self.config.loss)


def agpose_loss(pred: PosePrediction, batch: Mapping[str, torch.Tensor], y_symmetric_table: torch.Tensor,
                w: AGPoseLossWeights = AGPoseLossWeights()) -> dict[str, torch.Tensor]:
    """AG-Pose / CleanPose losses with the released weights (notes/cleanpose.md §1.9).

    Needs ``R (B, 3, 3)``, ``t (B, 3)``, ``size (B, 3)`` (metric extents) in ``batch``. The rotation
    target of y-symmetric classes (table rule with the handle visible: mug is not symmetric, as
    released) is canonicalised about y. The reconstruction Chamfer uses all observed points (the
    HouseCat6D setting; the NOCS "object-aware" mask is not available here).
    """
    for key in ("R", "t", "size"):
        if key not in batch:
            raise KeyError(f"agpose_loss: batch needs the ground truth {key!r}")
    o = pred.outputs
    R_gt, t_gt, s_gt = batch["R"].to(pred.R.dtype), batch["t"].to(pred.t.dtype), batch["size"].to(pred.size.dtype)
    cls = batch["class_ids"].long().reshape(-1)
    sym = y_symmetric_table[cls]
    if sym.any():
        R_gt = torch.where(sym[:, None, None], canonicalize_y_symmetric(R_gt), R_gt)
    l_pose = ((pred.R - R_gt).norm(dim=1).mean(1) + (pred.t - t_gt).norm(dim=-1)
              + (pred.size - s_gt).norm(dim=-1)).mean()
    kpt = o["kpt_3d"]
    pts = o.get("points_loss", batch["points"].to(kpt.dtype))
    d = torch.cdist(kpt, pts)  # (B, K, N)
    l_cd = d.min(-1).values.mean()
    scale = s_gt.norm(dim=-1)[:, None, None]
    nocs_gt = ((kpt.detach() - t_gt.unsqueeze(1)) / scale) @ R_gt
    l_nocs = F.smooth_l1_loss(o["kpt_nocs"], nocs_gt, beta=0.1, reduction="none").sum(-1).mean()
    dk = torch.cdist(kpt, kpt)
    K = kpt.shape[1]
    off = ~torch.eye(K, dtype=torch.bool, device=kpt.device)
    l_div = torch.relu(1 - dk / 0.01)[:, off].mean()
    losses = {"pose": w.pose * l_pose, "cd": w.cd * l_cd, "nocs": w.nocs * l_nocs, "div": w.div * l_div}
    if "recon" in o:
        dr = torch.cdist(pts, o["recon"])
        l_rec = 0.5 * dr.min(-1).values.mean() + 0.5 * dr.min(-2).values.mean()
        losses["recon"] = w.recon * l_rec
        losses["delta"] = w.delta * o["recon_delta"].norm(dim=-1).mean()
    if "kd_student" in o:
        losses["kd"] = w.kd * (o["kd_student"] - o["kd_teacher"]).norm(dim=-1).mean()
    return losses


# --------------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------------


_PRETRAINED_ARGS = ("rgb_checkpoint", "dict_init")
"""Files read at construction whose contents a trained checkpoint holds (``load_model`` drops them); the
teacher's file stays: it also gives the teacher's architecture."""


def _cfg(base: AGPoseConfig, overrides: dict) -> AGPoseConfig:
    if "loss" in overrides and isinstance(overrides["loss"], Mapping):
        overrides = {**overrides, "loss": AGPoseLossWeights(**overrides["loss"])}
    for k, v in list(overrides.items()):
        if isinstance(v, list):
            overrides[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
    unknown = set(overrides) - set(asdict(base))
    if unknown:
        raise ValueError(f"AGPoseConfig: unknown fields {sorted(unknown)}")
    return replace(base, **overrides)


@register_model("cleanpose", pretrained_args=_PRETRAINED_ARGS)
def cleanpose(**overrides) -> AGPose:
    """CleanPose with the released sizes; ``causal=False, distill=False`` gives AG-Pose."""
    return AGPose(_cfg(AGPoseConfig(), overrides))


@register_model("cleanpose_small", pretrained_args=_PRETRAINED_ARGS)
def cleanpose_small(**overrides) -> AGPose:
    """Narrow CleanPose for tests and CPU (:meth:`AGPoseConfig.small`)."""
    return AGPose(_cfg(AGPoseConfig.small(), overrides))


@register_model("agpose", pretrained_args=_PRETRAINED_ARGS)
def agpose(**overrides) -> AGPose:
    """AG-Pose: CleanPose without the front-door module and distillation."""
    return AGPose(_cfg(AGPoseConfig(causal=False, distill=False), overrides))


@register_model("agpose_small", pretrained_args=_PRETRAINED_ARGS)
def agpose_small(**overrides) -> AGPose:
    """Narrow AG-Pose."""
    return AGPose(_cfg(AGPoseConfig.small(causal=False, distill=False), overrides))
