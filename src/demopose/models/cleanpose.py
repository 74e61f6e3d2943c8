"""CleanPose and its base network AG-Pose: one family (``cleanpose``, ``cleanpose_small``, ``agpose``,
``agpose_small``).

- AG-Pose: Lin et al., "Instance-Adaptive and Geometric-Aware Keypoint Learning for Category-Level 6D
  Object Pose Estimation", CVPR 2024 (Leeiieeo/AG-Pose).
- CleanPose: Lin et al., "CleanPose: Category-Level Object Pose Estimation via Causal Learning and
  Knowledge Distillation", ICCV 2025 (chrislin0621/CleanPose): AG-Pose + the front-door module
  (:mod:`demopose.models.causal`) after the aggregator + residual distillation of the point encoder
  (:mod:`demopose.models.distill`). With both modules off (``causal.enabled=false``,
  ``distill.enabled=false``; the ``agpose`` builders) this *is* AG-Pose.

The options of the two CleanPose modules are nested like DeMo-Pose's (``model.args.causal: {enabled, ...}``,
``model.args.distill: {enabled, ...}``, :class:`~demopose.models.causal.FrontDoorOptions`,
:class:`~demopose.models.distill.DistillOptions`). Checkpoints of config version 1 stored them flat
(``causal: true``, ``fd_self_blocks``, ``teacher_dim``, ``loss.kd`` ...): :func:`upgrade_args_v1` nests them
when such a checkpoint is loaded (:func:`demopose.engine.checkpoint.upgrade_config`); given to the builder,
a flat key is an error naming its new place (:data:`LEGACY_ARGS`). docs/cleanpose.md lists what differs
from the paper and the released code.

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
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from demopose._checks import check_shape
from demopose.categories import CategoryTable, get_table
from demopose.geometry.rotation import euler_xyz_to_rotation_matrix, rotation_6d_y_to_matrix
from demopose.geometry.symmetry import canonicalize_y_symmetric
from demopose.layers.knn import gather_points, knn_indices
from demopose.layers.mlp import PointMLP
from demopose.layers.pointnet2 import PointNet2MSG
from demopose.models.base import PosePrediction
from demopose.models.causal import (
    CrossAttentionBlock,
    FrontDoorModule,
    FrontDoorOptions,
    SelfAttentionBlock,
    init_dictionary,
)
from demopose.models.distill import DistillOptions
from demopose.models.registry import config_from_overrides, register_model
from demopose.models.rgb_encoder import build_rgb_encoder, sample_at_pixels

__all__ = ["LEGACY_ARGS", "MLP_LAYOUTS", "CleanPose", "CleanPoseConfig", "CleanPoseLossWeights", "agpose",
           "agpose_small", "cleanpose", "cleanpose_loss", "cleanpose_small", "upgrade_args_v1"]


@dataclass(frozen=True)
class CleanPoseLossWeights:
    """Released loss weights (notes/cleanpose.md §1.9); the distillation weight is ``distill.kd_weight``."""

    pose: float = 0.3
    cd: float = 2.0
    nocs: float = 2.0
    div: float = 10.0
    recon: float = 15.0
    delta: float = 1.0


@dataclass(frozen=True)
class CleanPoseConfig:
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
        mlp_layout: ``upstream`` (AG-Pose's MLPs: plain Linear/ReLU but for the BatchNorm of GAFA's query and
            global MLPs and of the NOCS head's first MLP) | ``batchnorm`` (BN + ReLU in every MLP; the layout of
            checkpoints of config version 1), :data:`MLP_LAYOUTS`.
        online_aug: the training-time SE(3)/scale augmentation inside the model.
        causal: the front-door module on the keypoint features
            (:class:`~demopose.models.causal.FrontDoorOptions`; released: on, 80 entries per class, 12
            drawn, 2 self / 4 cross blocks, FIFO of the outputs; heads and FFN those of the network).
        distill: residual distillation of the pooled point feature
            (:class:`~demopose.models.distill.DistillOptions`; released: on, ULIP-2 Point-BERT, 768-d,
            weight 0.01).
        loss: :class:`CleanPoseLossWeights`.
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
    mlp_layout: str = "upstream"
    online_aug: bool = True
    aug_angle_deg: float = 20.0
    aug_shift: float = 0.02
    aug_scale: tuple = (0.8, 1.2)
    point_noise: float = 0.001
    causal: FrontDoorOptions = field(default_factory=lambda: FrontDoorOptions(enabled=True))
    distill: DistillOptions = field(default_factory=lambda: DistillOptions(
        enabled=True, teacher="pointbert", teacher_dim=768, cache=False))
    loss: CleanPoseLossWeights = field(default_factory=CleanPoseLossWeights)

    @classmethod
    def small(cls, **overrides) -> CleanPoseConfig:
        """A narrow CPU preset (64-wide, 32 keypoints, 3 PointNet++ levels, 16-entry dictionary, tiny teacher)."""
        base = cls(dim=64, num_kpts=32, pn2_npoints=(256, 64, 16),
                   pn2_radii=((0.02, 0.04), (0.04, 0.08), (0.08, 0.16)), pn2_nsamples=((8, 16),) * 3,
                   pn2_sa_mlps=(((16, 16), (16, 16)), ((32, 32), (32, 32)), ((64, 64), (64, 64))),
                   pn2_fp_mlps=((64,), (64,), (32,)), rgb_encoder="cnn", rgb_size=64, iakd_blocks=2,
                   ffn=64, gafa_k=(8, 16), pe_hidden=(32, 64), head_hidden=128, nocs_bins=32,
                   causal=FrontDoorOptions(enabled=True, dict_size=16, select_num=4, self_blocks=1, cross_blocks=1),
                   distill=DistillOptions(enabled=True, teacher="tiny", teacher_dim=64, cache=False))
        return replace(base, **overrides)


MLP_LAYOUTS = ("upstream", "batchnorm")
"""``CleanPoseConfig.mlp_layout`` values: ``upstream`` (the MLPs of Leeiieeo/AG-Pose ``model/Net_modules.py``,
which CleanPose keeps unchanged) and ``batchnorm`` (BatchNorm + ReLU between the layers of every MLP: this
project's layout up to config version 1, kept as a named option)."""


def _plain(in_c: int, widths: tuple[int, ...], last_act: bool = False) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` over ``(..., C)`` (``last_act``: a ReLU after the last layer too); the
    upstream 1x1 ``Conv1d`` / ``Linear`` stacks without normalisation. ``(..., in_c) -> (..., widths[-1])``."""
    layers: list[nn.Module] = []
    for a, b in zip((in_c, *widths[:-1]), widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*(layers if last_act else layers[:-1]))


class _ChannelNorm(nn.Module):
    """BatchNorm1d over the last axis of ``(..., C)`` (statistics over every leading position)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.reshape(-1, x.shape[-1])).view(x.shape)


def _check_layout(layout: str) -> bool:
    """True for ``batchnorm``; ValueError for an unknown layout."""
    if layout not in MLP_LAYOUTS:
        raise ValueError(f"mlp_layout: expected one of {MLP_LAYOUTS}, got {layout!r}")
    return layout == "batchnorm"


class KeypointDetector(nn.Module):
    """IAKD: queries decode against point features; cosine heat map. ``F (B, N, D), p (B, N, 3) ->
    heat (B, K, N), kpt (B, K, 3), kfeat (B, K, D)``. Queries Xavier-normal initialised (as upstream)."""

    def __init__(self, dim: int, num_kpts: int, blocks: int, heads: int, ffn: int, temperature: float) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.empty(num_kpts, dim))
        nn.init.xavier_normal_(self.queries)
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
    """Geometric-aware feature aggregation (AG-Pose ``GAFA_block``): local kNN attention, global mixing, output
    MLP. ``kpt (B, K, 3), kfeat (B, K, D), pts (B, N, 3), feats (B, N, D) -> (B, K, D)``.

    ``upstream`` layout: the position codes (``pe_local`` = ``fc_delta``, ``pe_abs``, ``pe_rel``), the
    neighbour fusion (``fc_delta_1``) and ``out_mlp`` are plain ``Linear``/``ReLU``; only the query MLP
    ``fc_in`` (Linear-BN-ReLU-Linear) and the global ``fuse_mlp`` ((Linear-BN-ReLU) x 2) have BatchNorm.
    ``batchnorm`` layout: BN + ReLU between the layers of every MLP.
    """

    def __init__(self, dim: int, k: int, pe_hidden: tuple[int, int], temperature: float,
                 layout: str = "upstream") -> None:
        super().__init__()
        self.k, self.temperature = k, temperature
        pe = (*pe_hidden, dim)
        if _check_layout(layout):
            self.pe_local = PointMLP(3, pe, last_act=False)
            self.fuse = PointMLP(2 * dim, (dim, dim), last_act=False)
            self.pe_abs, self.pe_rel = PointMLP(3, pe, last_act=False), PointMLP(3, pe, last_act=False)
            self.out = PointMLP(dim, (dim, dim), last_act=False)
        else:
            self.pe_local, self.fuse = _plain(3, pe), _plain(2 * dim, (dim, dim))
            self.pe_abs, self.pe_rel = _plain(3, pe), _plain(3, pe)
            self.out = _plain(dim, (dim, dim))
        self.fc_in = PointMLP(dim, (dim, dim), last_act=False)
        self.global_mlp = PointMLP(3 * dim, (dim, dim))

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
    """Keypoint NOCS by per-class 64-bin classification per axis (AG-Pose ``NOCS_Predictor``).
    ``(B, K, D), cls (B,) -> (B, K, 3)`` in [-0.5, 0.5].

    ``upstream`` layout: ``pre`` (``nocs_mlp``) is (Linear-BN-ReLU) x 2, Linear-BN (a BatchNorm on the output,
    no ReLU); ``post`` (``atten_mlp``) is plain. ``batchnorm``: BN + ReLU between layers of both, no output BN.
    """

    def __init__(self, dim: int, hidden: int, num_classes: int, bins: int, heads: int, ffn: int,
                 layout: str = "upstream") -> None:
        super().__init__()
        self.bins, self.num_classes = bins, num_classes
        if _check_layout(layout):
            self.pre = PointMLP(dim, (hidden, hidden, dim), last_act=False)
            self.post = PointMLP(dim, (hidden, hidden, num_classes * 3 * bins), last_act=False)
        else:
            self.pre = nn.Sequential(PointMLP(dim, (hidden, hidden, dim), last_act=False), _ChannelNorm(dim))
            self.post = _plain(dim, (hidden, hidden, num_classes * 3 * bins))
        self.attn = nn.ModuleList(SelfAttentionBlock(dim, heads, ffn) for _ in range(2))
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
    """Dense reconstruction from keypoints (training signal; AG-Pose ``Reconstructor``). ``kpt (B, K, 3),
    kfeat (B, K, D) -> offsets (B, K, R, 3)``. ``upstream``: every MLP plain; ``batchnorm``: BN + ReLU between
    layers."""

    def __init__(self, dim: int, hidden: int, n_off: int, layout: str = "upstream") -> None:
        super().__init__()
        self.n_off = n_off
        mlp = (lambda i, w: PointMLP(i, w, last_act=False)) if _check_layout(layout) else _plain
        self.pe = mlp(3, (64, 128, dim))
        self.feat = mlp(dim, (dim, dim))
        self.dec = mlp(2 * dim, (hidden, hidden, 3 * n_off))

    def forward(self, kpt: torch.Tensor, kfeat: torch.Tensor) -> torch.Tensor:
        f = self.pe(kpt) + self.feat(kfeat)
        g = f.mean(1, keepdim=True).expand_as(f)
        return self.dec(torch.cat([g, f], dim=-1)).view(*kpt.shape[:2], self.n_off, 3)


class PoseHead(nn.Module):
    """Pose/size regression from keypoints, their NOCS (detached) and features (AG-Pose
    ``PoseSizeEstimator``). ``kpt (B, K, 3), nocs (B, K, 3), kfeat (B, K, D) -> r6 (B, 6), t (B, 3), s (B, 3)``.

    ``upstream``: every MLP plain, with a ReLU after the last layer of the point encoders (3 -> 32 -> 64) and
    of the two per-keypoint MLPs, none after the three heads. ``batchnorm``: BN + ReLU between layers (and
    after the last layer of the two per-keypoint MLPs), no activation after the point encoders.
    """

    def __init__(self, dim: int, hidden: int, layout: str = "upstream") -> None:
        super().__init__()
        if _check_layout(layout):
            self.kpt_enc, self.nocs_enc = PointMLP(3, (32, 64), last_act=False), PointMLP(3, (32, 64), last_act=False)
            self.mlp1 = PointMLP(dim + 128, (hidden, dim))
            self.mlp2 = PointMLP(2 * dim, (hidden, hidden))
            self.heads = nn.ModuleList(PointMLP(hidden, (hidden, dim, o), last_act=False) for o in (6, 3, 3))
        else:
            self.kpt_enc, self.nocs_enc = _plain(3, (32, 64), last_act=True), _plain(3, (32, 64), last_act=True)
            self.mlp1 = _plain(dim + 128, (hidden, dim), last_act=True)
            self.mlp2 = _plain(2 * dim, (hidden, hidden), last_act=True)
            self.heads = nn.ModuleList(_plain(hidden, (hidden, dim, o)) for o in (6, 3, 3))

    def forward(self, kpt, nocs, kfeat):
        x = self.mlp1(torch.cat([self.kpt_enc(kpt), self.nocs_enc(nocs.detach()), kfeat], dim=-1))
        x = torch.cat([x, x.mean(1, keepdim=True).expand_as(x)], dim=-1)
        x = self.mlp2(x).mean(1)
        return tuple(h(x) for h in self.heads)


class CleanPose(nn.Module):
    """CleanPose / AG-Pose (module docstring). ``model.rgb_size`` tells the data pipeline which crop to make."""

    image_size, mesh_points, own_detector = None, 0, None  # the PoseModel contract (models/base.py)

    @property
    def categories(self) -> CategoryTable:
        return self.table

    def __init__(self, config: CleanPoseConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or CleanPoseConfig()
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
        layout = cfg.mlp_layout
        self.gafa = nn.ModuleList(GAFABlock(cfg.dim, k, cfg.pe_hidden, cfg.local_temperature, layout)
                                  for k in cfg.gafa_k)
        fd = cfg.causal
        self.front_door = FrontDoorModule(
            nc, cfg.dim, fd.dict_size, fd.select_num, cfg.heads if fd.heads is None else fd.heads,
            cfg.ffn if fd.ffn is None else fd.ffn, fd.self_blocks, fd.cross_blocks, fd.update, fd.momentum,
            fd.enqueue) if fd.enabled else None
        if self.front_door is not None and fd.dict_init:
            init_dictionary(self.front_door, fd.dict_init, name="front_door")
        self.nocs_head = NocsHead(cfg.dim, cfg.head_hidden, nc, cfg.nocs_bins, cfg.heads, cfg.ffn, layout)
        self.reconstructor = Reconstructor(cfg.dim, cfg.head_hidden, cfg.recon_offsets, layout)
        self.pose_head = PoseHead(cfg.dim, cfg.head_hidden, layout)
        kd = cfg.distill
        if kd.enabled:
            from demopose.models.distill import ResidualDistillation, build_teacher

            self.distill = ResidualDistillation(half, build_teacher(kd.teacher, kd.teacher_checkpoint, kd.teacher_dim),
                                                alpha=kd.alpha, cache=kd.cache)
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
        dR = euler_xyz_to_rotation_matrix(u(-a, a, B, 3))
        dt_ = u(-cfg.aug_shift, cfg.aug_shift, B, 1, 3)
        ds = u(*cfg.aug_scale, B, 1, 1)
        noise = (torch.randn(pts.shape, device=dev, dtype=dt, generator=generator) * cfg.point_noise)
        pts = (pts + noise.clamp(-5 * cfg.point_noise, 5 * cfg.point_noise) - dt_) / ds @ dR
        return pts, dR, dt_, ds

    def forward(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> PosePrediction:
        for key in ("points", "class_ids"):
            if key not in batch:
                raise KeyError(f"CleanPose batch: missing key {key!r} (needs 'points' and 'class_ids')")
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
            R = rotation_6d_y_to_matrix(r6)
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
        """All weighted losses (:func:`cleanpose_loss`)."""
        return cleanpose_loss(pred, batch, self.y_symmetric_table, self.config.loss, self.config.distill.kd_weight)


def cleanpose_loss(pred: PosePrediction, batch: Mapping[str, torch.Tensor], y_symmetric_table: torch.Tensor,
                   w: CleanPoseLossWeights = CleanPoseLossWeights(), kd_weight: float = 0.01
                   ) -> dict[str, torch.Tensor]:
    """AG-Pose / CleanPose losses with the released weights (notes/cleanpose.md §1.9); ``kd`` (weight
    ``kd_weight``, CleanPose's 0.01) when the prediction holds the distillation pair.

    Needs ``R (B, 3, 3)``, ``t (B, 3)``, ``size (B, 3)`` (metric extents) in ``batch``. The rotation
    target of y-symmetric classes (table rule with the handle visible: mug is not symmetric, as
    released) is canonicalised about y. The reconstruction Chamfer uses all observed points (the
    HouseCat6D setting; the NOCS "object-aware" mask is not available here).
    """
    for key in ("R", "t", "size"):
        if key not in batch:
            raise KeyError(f"cleanpose_loss: batch needs the ground truth {key!r}")
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
        losses["kd"] = kd_weight * (o["kd_student"] - o["kd_teacher"]).norm(dim=-1).mean()
    return losses


# --------------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------------


_PRETRAINED_ARGS = ("rgb_checkpoint", "causal.dict_init")
"""Files read at construction whose contents a trained checkpoint holds (``load_model`` drops them); the
teacher's file stays: it also gives the teacher's architecture."""

LEGACY_ARGS: dict[str, str] = {
    "causal": "causal.enabled", "distill": "distill.enabled",
    "dict_size": "causal.dict_size", "select_num": "causal.select_num",
    "fd_self_blocks": "causal.self_blocks", "fd_cross_blocks": "causal.cross_blocks",
    "dict_update": "causal.update", "dict_momentum": "causal.momentum", "dict_enqueue": "causal.enqueue",
    "dict_init": "causal.dict_init",
    "teacher": "distill.teacher", "teacher_checkpoint": "distill.teacher_checkpoint",
    "teacher_dim": "distill.teacher_dim", "teacher_cache": "distill.cache",
    "loss.kd": "distill.kd_weight",
}
"""Builder arguments of config version 1 (flat) -> their place since version 2 (dotted)."""


def upgrade_args_v1(args: Mapping) -> dict:
    """Builder arguments stored under config version 1 -> version 2: the flat front-door / distillation keys
    (:data:`LEGACY_ARGS`) nested under ``causal`` / ``distill``; ``mlp_layout: batchnorm`` (every version-1
    network had BatchNorm + ReLU in every MLP; the default is now the upstream layout). Other keys a
    version-1 checkpoint did not store stay unset, so the preset's defaults apply as they did then."""
    out: dict = {k: v for k, v in args.items() if k not in LEGACY_ARGS}
    nested: dict[str, dict] = {"causal": {}, "distill": {}}
    for old, new in LEGACY_ARGS.items():
        group, key = new.split(".")
        if old == "loss.kd":
            loss = dict(args.get("loss") or {})
            if "kd" in loss:
                nested[group][key] = loss.pop("kd")
                if loss:
                    out["loss"] = loss
                else:
                    out.pop("loss", None)
        elif old in args:
            value = args[old]
            if old in ("causal", "distill") and isinstance(value, Mapping):  # already nested
                nested[old] = {**dict(value), **nested[old]}
            else:
                nested[group][key] = value
    for group, opts in nested.items():
        if opts:
            out[group] = opts
    out.setdefault("mlp_layout", "batchnorm")
    return out


def _config(base: CleanPoseConfig, overrides: Mapping) -> CleanPoseConfig:
    """``base`` with the builder arguments ``overrides`` (nested ``causal`` / ``distill`` / ``loss`` mappings
    override the preset's fields one by one)."""
    overrides = dict(overrides)
    legacy = [k for k in overrides if k in LEGACY_ARGS and k not in ("causal", "distill")]
    legacy += [k for k in ("causal", "distill") if isinstance(overrides.get(k), bool)]
    if isinstance(overrides.get("loss"), Mapping) and "kd" in overrides["loss"]:
        legacy.append("loss.kd")
    if legacy:
        moved = ", ".join(f"{k} -> {LEGACY_ARGS[k]}" for k in legacy)
        raise ValueError(f"CleanPoseConfig: the front-door and distillation options are nested since config "
                         f"version 2 (model.args.causal.*, model.args.distill.*); renamed: {moved}")
    return config_from_overrides(base, overrides)


def _agpose(cfg: CleanPoseConfig) -> CleanPoseConfig:
    return replace(cfg, causal=replace(cfg.causal, enabled=False), distill=replace(cfg.distill, enabled=False))


_REGISTRATION = dict(pretrained_args=_PRETRAINED_ARGS, args_upgrades={1: upgrade_args_v1}, renamed_args=LEGACY_ARGS)


@register_model("cleanpose", **_REGISTRATION)
def cleanpose(**overrides) -> CleanPose:
    """CleanPose with the released sizes; ``causal={"enabled": False}, distill={"enabled": False}`` gives AG-Pose."""
    return CleanPose(_config(CleanPoseConfig(), overrides))


@register_model("cleanpose_small", **_REGISTRATION)
def cleanpose_small(**overrides) -> CleanPose:
    """Narrow CleanPose for tests and CPU (:meth:`CleanPoseConfig.small`)."""
    return CleanPose(_config(CleanPoseConfig.small(), overrides))


@register_model("agpose", **_REGISTRATION)
def agpose(**overrides) -> CleanPose:
    """AG-Pose: CleanPose without the front-door module and distillation."""
    return CleanPose(_config(_agpose(CleanPoseConfig()), overrides))


@register_model("agpose_small", **_REGISTRATION)
def agpose_small(**overrides) -> CleanPose:
    """Narrow AG-Pose."""
    return CleanPose(_config(_agpose(CleanPoseConfig.small()), overrides))
