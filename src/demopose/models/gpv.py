"""GPV-Pose: depth-only category-level 9-DoF pose network.

Di, Zhang, Lou, Manhardt, Ji, Navab, Tombari, "GPV-Pose: Category-level Object Pose Estimation via
Geometry-guided Point-wise Voting", CVPR 2022 (lolrudy/GPV_Pose; notes/depth_and_eval.md §1). The
``hs`` backbone option is HS-Pose (Zheng et al., CVPR 2023; Lynne-Zheng-Linfang/HS-Pose; notes §2).

Pipeline for ``B`` instances of ``N`` object points (metres, camera frame):

1. centre the points on their centroid; 3D-GC backbone (widths 128-128-256-256-512, S = 7 supports,
   k = 10 neighbours, two random 4x poolings: 1028 -> 257 -> 64 points), per-point features of the
   pooled levels propagated back to all points by nearest neighbour, global max feature;
   per-point feature = [fm_0 .. fm_4, one-hot category] (1286 channels for 6 categories);
2. green (object y) and red (object x) heads: unit vector + sigmoid confidence each;
3. rotation: the two vectors are made orthogonal by rotating each toward/away from the other in
   their common plane, the less confident one moving more (:func:`demopose.geometry.rotation.rectify_vectors`); for
   y-symmetric instances only the green vector counts; ``R = [x | y | z]`` with y first;
4. translation = residual + centroid; size = residual + category mean size;
5. training only: per-point bounding-box face normals / distances / confidences (6 faces, order
   ``[y+, x+, z+, x-, z-, y-]``) and a symmetric-counterpart point per input point.

Losses: :mod:`demopose.models.gpv_loss`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from demopose._checks import check_shape
from demopose.categories import CategoryTable, get_table
from demopose.geometry.rotation import rectify_vectors, rotation_from_vectors
from demopose.layers.gcn3d import GraphConv, RandomPool, SurfaceConv
from demopose.layers.hs_layer import HSLayer, HSSurfaceLayer
from demopose.layers.knn import gather_points, knn_indices, nearest_indices
from demopose.layers.mlp import PointMLP, PooledVectorHead
from demopose.models.base import PosePrediction
from demopose.models.gpv_fast import (
    pooled_heads_forward,
    pooled_heads_supported,
    split_first_layers,
    split_first_layers_supported,
)
from demopose.models.registry import config_from_overrides, register_model

__all__ = [
    "FACE_AXES",
    "BackboneLevels",
    "FACE_SIGNS",
    "FaceReconHead",
    "GPVBackbone",
    "GPVConfig",
    "GPVPose",
    "gpv",
    "gpv_small",
    "hs_pose",
    "hs_pose_small",
]

FACE_AXES = (1, 0, 2, 0, 2, 1)
"""Object axis of each bounding-box face, face order ``[y+, x+, z+, x-, z-, y-]`` (GPV-Pose)."""
FACE_SIGNS = (1.0, 1.0, 1.0, -1.0, -1.0, -1.0)
"""Outward direction of each face along its axis."""


@dataclass(frozen=True)
class GPVLossWeights:
    """Loss weights of GPV-Pose's training terms (GPV-Pose config/config.py defaults; notes §1.8):
    :attr:`GPVConfig.loss`, read by :func:`~demopose.models.gpv_loss.gpv_loss`."""

    rot_1: float = 8.0  # Rot1, Rot1_cos
    rot_2: float = 8.0  # Rot2, Rot2_cos
    rot_regular: float = 4.0  # Rot_r_a
    tran: float = 8.0
    size: float = 8.0
    r_con: float = 1.0
    recon_n: float = 3.0  # face normals   } recon_per_p
    recon_d: float = 3.0  # face distances }
    recon_f: float = 1.0  # face confidences (recon_p_f)
    recon_v: float = 1.0  # recon_point_vote
    recon_bb_r: float = 1.0
    recon_bb_t: float = 1.0
    recon_bb_s: float = 1.0
    recon_bb_self: float = 1.0
    geo_p: float = 1.0
    prop_pm: float = 2.0
    prop_sym: float = 1.0  # Prop_sym_recon and Prop_sym_rt each

    @classmethod
    def from_dict(cls, d: Mapping[str, float]) -> GPVLossWeights:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise KeyError(f"GPVLossWeights: unknown weight(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: float(v) for k, v in d.items()})


@dataclass(frozen=True)
class GPVConfig:
    """Architecture of a GPV-Pose network; defaults are the paper's / reference code's.

    Attributes:
        backbone: ``"gcn"`` (3D-GC, GPV-Pose) or ``"hs"`` (HS-Pose hybrid-scope layers).
        category_table: name of the category table giving the classes, mean sizes and symmetry.
        num_points: points per instance the model is trained with (1028; any N works at run time).
        neighbor_num: kNN size k of the graph layers (10; min(k, n // 8) after pooling).
        support_num: supports S per 3D-GC kernel (7).
        widths: output channels of conv_0 .. conv_4.
        pool_rate, pool_neighbor_num: random pooling by 4 with max over 4 neighbours.
        head_point_channels, head_fc_channels, head_dropout: the pooled vector heads
            (rotation, translation/size): 1x1 convs 1024, 256 -> max -> FC 256 -> dropout 0.2.
        recon_block: shared per-point MLP of the training-only heads (512, 512, 256).
        recon_hidden: hidden width of the symmetric-reconstruction head (128).
        face_hidden: hidden widths of the face (voting) head (512, 256, 128).
        vector_eps: epsilon of the vector normalisation ``v / (|v| + eps)`` (1e-6).
        fusion: DeMo-Pose per-point RGB fusion (:mod:`demopose.models.fusion`: concat, add, hadamard,
            mlp, attention) of ``batch["rgb_point_features"]`` ``(B, N, rgb_channels)`` into the
            backbone features before the heads; None for depth only (GPV-Pose).
        rgb_channels: channels of the RGB point features (the monocular PAN width).
        rgb_norm: ``none`` | ``layernorm``: normalisation of the RGB point features before the fusion
            (:mod:`demopose.models.fusion`).
        mesh_points: points predicted by the training-only Mesh-Point Loss head (0: no MPL).
        mpl_weight: λ_MPL (2000, DeMo-Pose).
        loss: the weights of the GPV-Pose loss terms (:class:`GPVLossWeights`; ``model.args.loss.<term>``).
    """

    backbone: Literal["gcn", "hs"] = "gcn"
    category_table: str = "nocs_real"
    num_points: int = 1028
    neighbor_num: int = 10
    support_num: int = 7
    widths: tuple[int, int, int, int, int] = (128, 128, 256, 256, 512)
    pool_rate: int = 4
    pool_neighbor_num: int = 4
    head_point_channels: tuple[int, ...] = (1024, 256)
    head_fc_channels: int = 256
    head_dropout: float = 0.2
    recon_block: tuple[int, ...] = (512, 512, 256)
    recon_hidden: int = 128
    face_hidden: tuple[int, ...] = (512, 256, 128)
    vector_eps: float = 1e-6
    fusion: str | None = None
    rgb_channels: int = 0
    rgb_norm: str = "none"
    mesh_points: int = 0
    mpl_weight: float = 2000.0
    loss: GPVLossWeights = field(default_factory=GPVLossWeights)

    def __post_init__(self) -> None:
        if self.backbone not in ("gcn", "hs"):
            raise ValueError(f"GPVConfig.backbone: expected 'gcn' or 'hs', got {self.backbone!r}")
        if len(self.widths) != 5:
            raise ValueError(f"GPVConfig.widths: expected 5 channel counts, got {self.widths}")
        for name in ("neighbor_num", "support_num", "pool_rate", "pool_neighbor_num", "num_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPVConfig.{name}: expected a positive integer, got {getattr(self, name)}")

    @classmethod
    def small(cls, **overrides) -> GPVConfig:
        """A narrow preset for tests and CPU experiments (~1/4 of the channels, same topology)."""
        base = cls(
            widths=(32, 32, 64, 64, 128),
            head_point_channels=(256, 128),
            head_fc_channels=128,
            recon_block=(128, 128, 64),
            recon_hidden=64,
            face_hidden=(128, 64, 64),
        )
        return replace(base, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# modules
# --------------------------------------------------------------------------------------------------


def _bn_points(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over the channels of ``(B, N, C)``."""
    return bn(x.transpose(1, 2)).transpose(1, 2)


@dataclass
class BackboneLevels:
    """Per-resolution outputs of :class:`GPVBackbone` for ``B`` instances of ``N`` points.

    Attributes:
        fm_0, fm_1: ``(B, N, c0)``, ``(B, N, c1)`` features of all points.
        fm_2, fm_3: ``(B, N1, c2)``, ``(B, N1, c3)`` on the first pooling level (``N1 = N // rate``).
        fm_4: ``(B, N2, c4)`` on the second pooling level.
        near_1, near_2: ``(B, N)`` int64, nearest level-1 / level-2 point of every input point.
        f_global: ``(B, c4)`` max of ``fm_4`` over points.
    """

    fm_0: torch.Tensor
    fm_1: torch.Tensor
    fm_2: torch.Tensor
    fm_3: torch.Tensor
    fm_4: torch.Tensor
    near_1: torch.Tensor
    near_2: torch.Tensor
    f_global: torch.Tensor

    def dense(self) -> torch.Tensor:
        """``(B, N, c0 + .. + c4)``: every level propagated to all points by nearest neighbour."""
        return torch.cat([self.fm_0, self.fm_1, gather_points(self.fm_2, self.near_1),
                          gather_points(self.fm_3, self.near_1), gather_points(self.fm_4, self.near_2)], dim=-1)


class GPVBackbone(nn.Module):
    """3D-GC (or HS-Pose) point backbone of GPV-Pose (lolrudy/GPV_Pose : FaceRecon.py, notes §1.2).

    Shapes:
        forward(vertices ``(B, N, 3)``, centred) -> (per-point features ``(B, N, sum(widths))``,
        global feature ``(B, widths[-1])``). ``N`` must be at least ``4 * rate * rate`` (64 for rate 4)
        so that every level keeps neighbours.
    """

    def __init__(self, config: GPVConfig) -> None:
        super().__init__()
        c, S = config.widths, config.support_num
        self.kind = config.backbone
        self.neighbor_num = config.neighbor_num
        if self.kind == "gcn":
            self.conv_0: nn.Module = SurfaceConv(c[0], S)
            convs = [GraphConv(c[0], c[1], S), GraphConv(c[1], c[2], S),
                     GraphConv(c[2], c[3], S), GraphConv(c[3], c[4], S)]
        else:
            self.conv_0 = HSSurfaceLayer(c[0], S)
            convs = [HSLayer(c[0], c[1], S), HSLayer(c[1], c[2], S),
                     HSLayer(c[2], c[3], S), HSLayer(c[3], c[4], S)]
        self.conv_1, self.conv_2, self.conv_3, self.conv_4 = convs
        self.bn_1 = nn.BatchNorm1d(c[1])
        self.bn_2 = nn.BatchNorm1d(c[2])
        self.bn_3 = nn.BatchNorm1d(c[3])
        self.pool_1 = RandomPool(config.pool_rate, config.pool_neighbor_num)
        self.pool_2 = RandomPool(config.pool_rate, config.pool_neighbor_num)
        self.out_channels = sum(c)
        self.global_channels = c[4]
        self.min_points = 4 * config.pool_rate * config.pool_rate

    def _knn(self, v: torch.Tensor, pooled: bool) -> torch.Tensor:
        n = v.shape[1]
        # After pooling GPV-Pose uses min(k, n // 8) neighbours (FaceRecon.forward).
        k = min(self.neighbor_num, n // 8) if pooled else min(self.neighbor_num, n - 1)
        return knn_indices(v, k=max(1, k), exclude_self=True)

    def draw_pool_indices(
        self, n_points: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two random subsets :meth:`forward` would draw with ``generator`` (same order, same values).

        Returns ``(int(N / rate),)`` and ``(int(int(N / rate) / rate),)`` int64 indices: passed back as
        ``pool_indices``, they make a forward reproducible outside PyTorch (the ONNX graph's inputs).
        """
        out = []
        n = n_points
        for pool in (self.pool_1, self.pool_2):
            gen_device = generator.device if generator is not None else (device or "cpu")
            keep = int(n / pool.rate)
            out.append(torch.randperm(n, generator=generator, device=gen_device)[:keep].to(device or gen_device))
            n = keep
        return out[0], out[1]

    def forward(
        self, vertices: torch.Tensor, generator: torch.Generator | None = None,
        pool_indices: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``pool_indices``: the two pooling subsets (:meth:`draw_pool_indices`) instead of random draws."""
        levels = self.levels(vertices, generator, pool_indices)
        return levels.dense(), levels.f_global

    def levels(
        self, vertices: torch.Tensor, generator: torch.Generator | None = None,
        pool_indices: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> BackboneLevels:
        """The features of each resolution before they are propagated to all points (:meth:`forward`
        concatenates :meth:`BackboneLevels.dense`); arguments as :meth:`forward`."""
        v0 = vertices
        if v0.shape[1] < self.min_points:
            raise ValueError(f"points: expected at least {self.min_points} points, got {v0.shape[1]}")
        sample_1, sample_2 = pool_indices if pool_indices is not None else (None, None)
        idx0 = self._knn(v0, pooled=False)
        fm_0 = torch.relu(self.conv_0(v0, idx0))
        fm_1 = torch.relu(_bn_points(self.bn_1, self.conv_1(v0, fm_0, idx0)))
        # the pooling layers reuse the first columns of the convolutions' kNN (same points, self excluded)
        v1, fm_p1, _ = self.pool_1(v0, fm_1, generator, sample_1, neighbor_index=idx0)
        idx1 = self._knn(v1, pooled=True)
        fm_2 = torch.relu(_bn_points(self.bn_2, self.conv_2(v1, fm_p1, idx1)))
        fm_3 = torch.relu(_bn_points(self.bn_3, self.conv_3(v1, fm_2, idx1)))
        v2, fm_p2, _ = self.pool_2(v1, fm_3, generator, sample_2, neighbor_index=idx1)
        idx2 = self._knn(v2, pooled=True)
        fm_4 = self.conv_4(v2, fm_p2, idx2)
        return BackboneLevels(fm_0, fm_1, fm_2, fm_3, fm_4, nearest_indices(v0, v1), nearest_indices(v0, v2),
                              fm_4.amax(dim=1))


class FaceReconHead(nn.Module):
    """Training-only heads: point-wise box-face voting and symmetric-counterpart reconstruction.

    GPV-Pose FaceRecon ``conv1d_block`` / ``recon_head`` / ``face_head`` (notes §1.3): a shared
    per-point MLP; the reconstruction head predicts one 3D point per input point; the face head sees
    [global feature, shared per-point feature, centred xyz] and predicts 6 x (normal 3, distance 1,
    confidence 1) = 30 values per point.

    Shapes:
        forward(feat ``(B, N, C)``, global ``(B, G)``, centred points ``(B, N, 3)``) ->
        (recon ``(B, N, 3)`` in the centred frame, face normals ``(B, N, 6, 3)`` unit,
        face distances ``(B, N, 6)`` metres, face confidences ``(B, N, 6)`` in (0, 1)).
    """

    def __init__(
        self,
        in_channels: int,
        global_channels: int,
        block: Sequence[int] = (512, 512, 256),
        recon_hidden: int = 128,
        face_hidden: Sequence[int] = (512, 256, 128),
        vector_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.block = PointMLP(in_channels, block)
        c = self.block.out_channels
        self.recon_head = PointMLP(c, (recon_hidden, 3), last_act=False)
        self.face_head = PointMLP(global_channels + c + 3, (*face_hidden, 30), last_act=False)
        self.vector_eps = vector_eps

    def forward(
        self, feat: torch.Tensor, f_global: torch.Tensor, centred: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.heads(self.block(feat), f_global, centred)

    def heads(
        self, shared: torch.Tensor, f_global: torch.Tensor, centred: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` after the shared per-point block: ``shared`` ``(B, N, block[-1])``."""
        B, N, _ = shared.shape
        recon = self.recon_head(shared).float()
        face_in = torch.cat([f_global.unsqueeze(1).expand(-1, N, -1).to(shared.dtype), shared,
                             centred.to(shared.dtype)], dim=-1)
        face = self.face_head(face_in).float()  # (B, N, 30); float32 (autocast) before the normalisation
        normal = face[..., :18].reshape(B, N, 6, 3)
        normal = normal / (normal.norm(dim=-1, keepdim=True) + self.vector_eps)
        return recon, normal, face[..., 18:24], torch.sigmoid(face[..., 24:30])


class GPVPose(nn.Module):
    """GPV-Pose network (see module docstring); a :class:`~demopose.models.base.PoseModel` reading points only
    (``mesh_points`` > 0 asks for the Mesh-Point Loss samples in training).

    Args:
        config: architecture; default :class:`GPVConfig()` (paper sizes).
        mean_sizes: ``(num_classes, 3)`` metres overriding the table's mean sizes (e.g. computed from
            HouseCat6D training labels); default: ``table.mean_sizes()`` (zeros where unknown).

    ``forward(batch)`` reads:
        ``points`` ``(B, N, 3)`` float metres, camera frame; ``class_ids`` ``(B,)`` int, 1-based ids
        of the category table; optional ``y_symmetric`` ``(B,)`` bool (default: the table's rule with
        the handle visible, i.e. a mug is asymmetric, as in GPV-Pose's evaluation); optional
        ``mean_size`` ``(B, 3)`` metres (default: the model's table).

    Returns a :class:`PosePrediction` with ``score=None`` and ``outputs``:
        ``green``, ``red`` ``(B, 3)`` raw unit vectors (object y / x in the camera frame);
        ``green_conf``, ``red_conf`` ``(B,)``; ``green_rect``, ``red_rect`` ``(B, 3)`` after
        rectification; ``size_residual``, ``mean_size``, ``centroid`` ``(B, 3)``;
        ``y_symmetric`` ``(B,)`` bool; in training mode only: ``recon`` ``(B, N, 3)`` (camera frame),
        ``face_normal`` ``(B, N, 6, 3)``, ``face_dist`` ``(B, N, 6)``, ``face_conf`` ``(B, N, 6)``.
    """

    image_size = None  # the PoseModel contract: no whole frame, no instance crop, no detector of its own
    rgb_size = None
    own_detector = None

    def __init__(self, config: GPVConfig | None = None, mean_sizes: Sequence | torch.Tensor | None = None):
        super().__init__()
        self.config = config = config or GPVConfig()
        self.categories: CategoryTable = get_table(config.category_table)
        self.num_classes = nc = len(self.categories)
        self.backbone = GPVBackbone(config)
        self.fusion = None
        geo_c = self.backbone.out_channels
        if config.fusion is not None:
            from demopose.models.fusion import PointFusion

            if config.rgb_channels <= 0:
                raise ValueError("GPVConfig.rgb_channels: must be > 0 when fusion is set")
            self.fusion = PointFusion(config.fusion, geo_c, config.rgb_channels, rgb_norm=config.rgb_norm)
            geo_c = self.fusion.out_channels
        self.mesh_head = None
        if config.mesh_points > 0:
            from demopose.models.mesh_point_loss import MeshPointHead

            self.mesh_head = MeshPointHead(self.backbone.global_channels, config.mesh_points)
        feat_c = geo_c + nc
        head = dict(point_channels=config.head_point_channels, fc_channels=config.head_fc_channels,
                    dropout=config.head_dropout)
        self.rot_green = PooledVectorHead(feat_c, 4, **head)
        self.rot_red = PooledVectorHead(feat_c, 4, **head)
        self.ts_head = PooledVectorHead(feat_c + 3, 6, **head)
        self.face_recon = FaceReconHead(feat_c, self.backbone.global_channels, config.recon_block,
                                        config.recon_hidden, config.face_hidden, config.vector_eps)
        table_sizes = torch.as_tensor(self.categories.mean_sizes(), dtype=torch.float32)
        if mean_sizes is not None:
            ms = torch.as_tensor(mean_sizes, dtype=torch.float32)
            check_shape(ms, f"{nc} 3", "mean_sizes")
            table_sizes[1:] = ms
        self.register_buffer("mean_sizes", table_sizes, persistent=False)
        sym = [False] + [self.categories.is_y_symmetric(c.id, True) for c in self.categories]
        self.register_buffer("y_symmetric_table", torch.tensor(sym), persistent=False)
        # Eval runs the pooled heads in the exact split-weight form (demopose.models.gpv_fast); False
        # forces the plain concatenation formulation (reference for tests).
        self.fast_heads = True

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_folded_heads_cache", None)  # derived at inference; rebuilt on first use after unpickling
        return state

    @property
    def table(self) -> CategoryTable:
        """Deprecated name of :attr:`categories` (one release)."""
        warnings.warn("GPVPose.table is deprecated: use GPVPose.categories", DeprecationWarning, stacklevel=2)
        return self.categories

    @property
    def mesh_points(self) -> int:
        """Mesh-Point head size (0: no MPL); the data pipeline provides that many mesh samples."""
        return int(self.config.mesh_points)

    # ------------------------------------------------------------------------------------------
    def _inputs(self, batch: Mapping[str, torch.Tensor]):
        for key in ("points", "class_ids"):
            if key not in batch:
                raise KeyError(f"GPVPose batch: missing key {key!r} (needs 'points' and 'class_ids')")
        points = batch["points"]
        dims = check_shape(points, "B N 3", "batch['points']")
        class_ids = torch.as_tensor(batch["class_ids"], device=points.device).long().reshape(-1)
        check_shape(class_ids, "B", "batch['class_ids']", dims)
        if class_ids.numel() and (int(class_ids.min()) < 1 or int(class_ids.max()) > self.num_classes):
            raise ValueError(f"batch['class_ids']: expected 1-based ids in 1..{self.num_classes} "
                             f"({self.categories.name}), got {class_ids.tolist()}")
        sym = batch.get("y_symmetric")
        sym = self.y_symmetric_table[class_ids] if sym is None else torch.as_tensor(sym, device=points.device)
        sym = sym.bool().reshape(-1)
        check_shape(sym, "B", "batch['y_symmetric']", dims)
        mean_size = batch.get("mean_size")
        mean_size = self.mean_sizes[class_ids] if mean_size is None else mean_size
        check_shape(mean_size, "B 3", "batch['mean_size']", dims)
        return points, class_ids, sym, mean_size.to(points.dtype)

    def forward(
        self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> PosePrediction:
        """Predict poses; ``generator`` seeds the random pooling (reproducible inference)."""
        points, class_ids, sym, mean_size = self._inputs(batch)
        rgb = None
        if self.fusion is not None:
            if "rgb_point_features" not in batch:
                raise KeyError("GPVPose batch: this model fuses RGB features; missing 'rgb_point_features' "
                               "(B, N, rgb_channels)")
            rgb = batch["rgb_point_features"]
        return self.predict(points, class_ids, sym, mean_size, rgb, generator)

    def predict(
        self, points: torch.Tensor, class_ids: torch.Tensor, y_symmetric: torch.Tensor, mean_size: torch.Tensor,
        rgb_point_features: torch.Tensor | None = None, generator: torch.Generator | None = None,
        pool_indices: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> PosePrediction:
        """:meth:`forward` on validated tensors, without the data-dependent input checks (the traceable
        graph that ONNX export records).

        Args:
            points: ``(B, N, 3)`` metres. class_ids: ``(B,)`` int64, 1-based. y_symmetric: ``(B,)`` bool.
            mean_size: ``(B, 3)`` metres. rgb_point_features: ``(B, N, rgb_channels)`` for fusion models.
            pool_indices: the random pooling subsets (:meth:`GPVBackbone.draw_pool_indices`), or None to
                draw them with ``generator``.
        """
        sym = y_symmetric
        eps = self.config.vector_eps
        # float64 accumulation: the same float32 centroid in every backend (a float32 mean's summation order
        # differs between PyTorch and onnxruntime, and the neighbour search of the centred points would follow)
        centroid = points.double().mean(dim=1, keepdim=True).to(points.dtype)
        centred = points - centroid
        if pooled_heads_supported(self):  # eval: the exact split-weight heads (demopose.models.gpv_fast)
            levels = self.backbone.levels(centred, generator, pool_indices)
            rgb = self.fusion.normalise_rgb(rgb_point_features) if self.fusion is not None else None
            g_out, r_out, ts = pooled_heads_forward(self, levels, class_ids, centred, rgb)
        elif self.training and split_first_layers_supported(self):
            # training: every head's first per-point layer split by input rate (demopose.models.gpv_fast)
            levels = self.backbone.levels(centred, generator, pool_indices)
            f_global = levels.f_global
            rgb = self.fusion.normalise_rgb(rgb_point_features) if self.fusion is not None else None
            z_green, z_red, z_ts, z_face = split_first_layers(self, levels, class_ids, centred, rgb)
            B = centred.shape[0]
            g_out = self.rot_green.forward_from_first(z_green, B)
            r_out = self.rot_red.forward_from_first(z_red, B)
            ts = self.ts_head.forward_from_first(z_ts, B)
            face_input = self.face_recon.block.forward_from_first(z_face).view(B, centred.shape[1], -1)
        else:
            feat, f_global = self.backbone(centred, generator, pool_indices)
            if self.fusion is not None:
                feat = self.fusion(feat, rgb_point_features)
            one_hot = F.one_hot(class_ids - 1, self.num_classes).to(feat.dtype)
            x = torch.cat([feat, one_hot.unsqueeze(1).expand(-1, feat.shape[1], -1)], dim=-1)  # (B, N, C)
            g_out, r_out = self.rot_green(x), self.rot_red(x)
            ts = self.ts_head(torch.cat([x, centred], dim=-1))
            face_input = self.face_recon.block(x) if self.training else None
        # float32 from here on (bf16 under autocast): normalisations and the rotation are never lower precision
        g_out, r_out, ts = g_out.float(), r_out.float(), ts.float()
        green = g_out[:, 1:] / (g_out[:, 1:].norm(dim=-1, keepdim=True) + eps)
        red = r_out[:, 1:] / (r_out[:, 1:].norm(dim=-1, keepdim=True) + eps)
        green_conf, red_conf = torch.sigmoid(g_out[:, 0]), torch.sigmoid(r_out[:, 0])
        t = ts[:, :3] + centroid[:, 0]
        size_residual = ts[:, 3:6]
        g_rect, r_rect = rectify_vectors(green, red, green_conf, red_conf, sym)
        R = rotation_from_vectors(g_rect, r_rect)
        outputs = {
            "green": green, "red": red, "green_conf": green_conf, "red_conf": red_conf,
            "green_rect": g_rect, "red_rect": r_rect, "size_residual": size_residual,
            "mean_size": mean_size, "centroid": centroid[:, 0], "y_symmetric": sym,
        }
        if self.training:
            recon, normal, dist, conf = self.face_recon.heads(face_input, f_global, centred)
            outputs.update(recon=recon + centroid, face_normal=normal, face_dist=dist, face_conf=conf)
            if self.mesh_head is not None:
                outputs["mesh_points"] = self.mesh_head(f_global).float()
        return PosePrediction(R=R, t=t, size=size_residual + mean_size, score=None, outputs=outputs)

    def loss(self, pred: PosePrediction, batch: Mapping[str, torch.Tensor], weights=None) -> dict[str, torch.Tensor]:
        """All GPV-Pose training loss terms (:func:`demopose.models.gpv_loss.gpv_loss`, without its ``loss`` total;
        plus ``mpl`` with the Mesh-Point head), weighted by ``weights`` (default :attr:`GPVConfig.loss`). The
        engine minimises their sum."""
        from demopose.models.gpv_loss import gpv_loss, gpv_symmetry_targets

        if "sym_info" not in batch:  # derive GPV's symmetry labels from the category table
            batch = {**batch, **gpv_symmetry_targets(self.categories, batch["class_ids"], batch.get("handle_visible"))}
        losses = gpv_loss(pred, batch, self.config.loss if weights is None else weights)
        losses.pop("loss")  # the engine minimises the sum of the terms; no total inside the dict
        if "mesh_points" in pred.outputs:
            if "model_points" not in batch:
                raise KeyError("GPVPose batch: the Mesh-Point Loss needs 'model_points' (B, M, 3) mesh samples")
            from demopose.models.mesh_point_loss import mesh_point_loss

            sym = batch.get("y_symmetric", pred.outputs["y_symmetric"])
            mpl = mesh_point_loss(pred.outputs["mesh_points"], batch["model_points"], batch["R"], sym)
            losses["mpl"] = self.config.mpl_weight * mpl
        return losses


# --------------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------------


def _build(config: GPVConfig, overrides: dict) -> GPVPose:
    mean_sizes = overrides.pop("mean_sizes", None)  # a builder argument, not a config field
    return GPVPose(config_from_overrides(config, overrides), mean_sizes=mean_sizes)


@register_model("gpv")
def gpv(**overrides) -> GPVPose:
    """GPV-Pose with the paper's sizes (3D-GC backbone); ``overrides`` are :class:`GPVConfig` fields."""
    return _build(GPVConfig(), overrides)


@register_model("gpv_small")
def gpv_small(**overrides) -> GPVPose:
    """Narrow GPV-Pose for tests and CPU (:meth:`GPVConfig.small`)."""
    return _build(GPVConfig.small(), overrides)


@register_model("hs_pose")
def hs_pose(**overrides) -> GPVPose:
    """HS-Pose: GPV-Pose with the hybrid-scope backbone (k = 10, the paper's main setting)."""
    return _build(GPVConfig(backbone="hs"), overrides)


@register_model("hs_pose_small")
def hs_pose_small(**overrides) -> GPVPose:
    """Narrow HS-Pose for tests and CPU."""
    return _build(GPVConfig.small(backbone="hs"), overrides)
