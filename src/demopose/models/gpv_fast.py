"""Exact, faster inference for the pooled heads of GPV-Pose (rotation green / red, translation + size).

Each pooled head (:class:`demopose.layers.mlp.PooledVectorHead`; GPV-Pose ``Rot_green`` / ``Rot_red`` /
``Pose_Ts``) starts with a per-point linear layer ``1286 (1289) -> 1024`` on

    ``x_i = [fm0_i, fm1_i, fm2[n1(i)], fm3[n1(i)], fm4[n2(i)], rgb_i, onehot(c), xyz_i]``

where ``fm2``, ``fm3`` live on the ``N / 4`` points of the first pooling level, ``fm4`` on the ``N / 16``
of the second, ``n1``, ``n2`` are the nearest pooled points of every input point, ``onehot(c)`` is the
category (constant per instance), ``rgb_i`` the DeMo-Pose ``concat`` fusion features (if any) and
``xyz_i`` the centred point (translation head only). A linear map commutes with a row gather, so

    ``W x_i + b = W_d [fm0_i, fm1_i, rgb_i] + W_x xyz_i + (W_1 [fm2, fm3])[n1(i)] + (W_2 fm4)[n2(i)] + W_c[:, c] + b``

is the same layer computed with ~3x fewer multiply-adds: the pooled parts are multiplied at 257 and 64
points instead of 1028 and the category part once per instance. Further exact rewrites at eval:

* the BatchNorm after every per-point linear layer is folded into its weight and bias (running
  statistics: ``W' = γ/σ · W``, ``b' = γ/σ · (b − μ) + β``);
* the first layers of the three heads share their input and run as one ``(·, 3·1024)`` matrix product;
* ``max_i ReLU(z_i) = ReLU(max_i z_i)`` (ReLU is monotone), so the last per-point ReLU runs after the
  max-pool, on one row per instance;
* dropout is the identity at eval.

In training the same split serves the first per-point layer of all four heads that read ``x_i`` (the three
pooled heads and the training-only face / reconstruction block): :func:`split_first_layers`, one product per
input rate for all of them, BatchNorm (batch statistics) and the rest of each head unchanged, gradients through
autograd.

Nothing in the architecture or the state dict changes: the folded weights are derived from the model's
parameters and buffers and cached until one of them changes (its version counter moves, e.g. after
``load_state_dict`` or an optimiser step). With gradients enabled they are rebuilt inside the graph,
so gradients still reach the original parameters. :func:`pooled_heads_supported` tells when the rewrite
applies (eval mode, BatchNorm with running statistics, no fusion or ``concat`` fusion); otherwise
:class:`~demopose.models.gpv.GPVPose` runs the plain concatenation formulation. ``GPVPose.fast_heads =
False`` forces the plain formulation (tests pin one against the other).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from demopose.layers.knn import gather_points
from demopose.layers.mlp import PooledVectorHead
from demopose.models.base import weights_key

if TYPE_CHECKING:  # pragma: no cover
    from demopose.models.gpv import BackboneLevels, GPVPose

__all__ = ["FoldedPooledHeads", "fold_linear_bn", "pooled_heads_forward", "pooled_heads_supported",
           "split_first_layers", "split_first_layers_supported"]

HEAD_BLOCK_ELEMENTS = 1 << 21
"""First-layer activations computed at once on CPU (at most 8 MiB of fp32: 682 rows of the 3 x 1024 heads,
so a 1028-point instance runs as 2 blocks of 514 rows)."""


def fold_linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight ``(out, in)`` and bias ``(out,)`` of ``bn(linear(x))`` at eval (running statistics).

    ``bn=None`` returns the linear layer's own weight and bias (zeros when it has none).
    """
    w = linear.weight
    b = linear.bias if linear.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    if bn is None:
        return w, b
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps) if bn.affine else torch.rsqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(scale)
    return w * scale[:, None], (b - bn.running_mean) * scale + shift


def _bn_has_running_stats(mlp: nn.Module) -> bool:
    return all(m.track_running_stats and m.running_mean is not None
               for m in mlp.modules() if isinstance(m, nn.BatchNorm1d))


def pooled_heads_supported(model: GPVPose) -> bool:
    """Whether :func:`pooled_heads_forward` reproduces ``model``'s three pooled heads exactly."""
    if model.training or not getattr(model, "fast_heads", True):
        return False
    if model.fusion is not None and model.fusion.kind != "concat":
        return False
    heads = (model.rot_green, model.rot_red, model.ts_head)
    widths = {tuple(lin.out_features for lin in h.point_mlp.linears) for h in heads}
    return len(widths) == 1 and all(_bn_has_running_stats(h.point_mlp) for h in heads)


@dataclass
class FoldedPooledHeads:
    """The pooled heads' per-point layers, BatchNorm folded, first layer split by input rate.

    Attributes:
        w_dense: ``(C_dense, K·H)`` rows for ``[fm0, fm1, rgb]``.
        w_xyz: per head with an xyz input (the translation head): ``(head index, (3, H) rows)``; a
            separate product so that the dense one keeps a round inner size (256, not 259: ~10% faster).
        w_level1: ``(c2 + c3, K·H)`` rows for ``[fm2, fm3]`` (first pooling level).
        w_level2: ``(c4, K·H)`` rows for ``fm4`` (second pooling level).
        w_class: ``(num_classes, K·H)`` one-hot rows, first-layer bias and BN shift added.
        hidden: per head, the later per-point layers as ``(W^T (in, out), b)``, BN folded.
        width: ``H``, the first layer's width per head.
    """

    w_dense: torch.Tensor
    w_xyz: list[tuple[int, torch.Tensor]]
    w_level1: torch.Tensor
    w_level2: torch.Tensor
    w_class: torch.Tensor
    hidden: list[list[tuple[torch.Tensor, torch.Tensor]]]
    width: int

    @classmethod
    def from_heads(
        cls, heads: Sequence[PooledVectorHead], widths: Sequence[int], rgb_channels: int, num_classes: int
    ) -> FoldedPooledHeads:
        """Fold ``heads`` whose input is ``[fm0..fm4 (widths), rgb (rgb_channels), onehot (num_classes)]``,
        optionally followed by 3 xyz channels (the translation head)."""
        c0, c1, c2, c3, c4 = widths
        geo = sum(widths)
        base = geo + rgb_channels + num_classes
        sl_dense = [slice(0, c0 + c1), slice(geo, geo + rgb_channels)]
        sl_l1 = slice(c0 + c1, c0 + c1 + c2 + c3)
        sl_l2 = slice(c0 + c1 + c2 + c3, geo)
        sl_cls = slice(geo + rgb_channels, base)
        dense, level1, level2, cls_rows, hidden, xyz = [], [], [], [], [], []
        for i, head in enumerate(heads):
            mlp = head.point_mlp
            w, b = fold_linear_bn(mlp.linears[0], mlp.norms[0])  # (H, Cin), (H,)
            if w.shape[1] not in (base, base + 3):
                raise ValueError(f"pooled head: expected {base} or {base + 3} input channels, got {w.shape[1]}")
            if w.shape[1] == base + 3:
                xyz.append((i, w[:, base:].t().contiguous()))
            dense.append(torch.cat([w[:, sl_dense[0]], w[:, sl_dense[1]]], dim=1))
            level1.append(w[:, sl_l1])
            level2.append(w[:, sl_l2])
            cls_rows.append(w[:, sl_cls] + b[:, None])
            hidden.append([(wt.t().contiguous(), bt) for wt, bt in
                           (fold_linear_bn(lin, bn) for lin, bn in zip(mlp.linears[1:], mlp.norms[1:]))])
        return cls(
            w_dense=torch.cat(dense).t().contiguous(),
            w_xyz=xyz,
            w_level1=torch.cat(level1).t().contiguous(),
            w_level2=torch.cat(level2).t().contiguous(),
            w_class=torch.cat(cls_rows).t().contiguous(),
            hidden=hidden,
            width=heads[0].point_mlp.linears[0].out_features,
        )


def _folded(model: GPVPose) -> FoldedPooledHeads:
    heads = (model.rot_green, model.rot_red, model.ts_head)
    rgb_c = model.config.rgb_channels if model.fusion is not None else 0

    def build() -> FoldedPooledHeads:
        return FoldedPooledHeads.from_heads(heads, model.config.widths, rgb_c, model.num_classes)

    needs_graph = torch.is_grad_enabled() and any(p.requires_grad for h in heads for p in h.parameters())
    if needs_graph or torch.compiler.is_exporting() or torch.compiler.is_compiling():
        return build()  # inside the autograd / traced graph, never cached
    key = weights_key(*(h.point_mlp for h in heads))
    cached = getattr(model, "_folded_heads_cache", None)
    if key is not None and cached is not None and cached[0] == key:
        return cached[1]
    with torch.no_grad():
        folded = build()
    if key is not None:
        model._folded_heads_cache = (key.pin(), folded)
    return folded


def pooled_heads_forward(
    model: GPVPose, levels: BackboneLevels, class_ids: torch.Tensor, centred: torch.Tensor,
    rgb: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Outputs of ``model.rot_green``, ``model.rot_red`` and ``model.ts_head`` at eval, exactly as on the
    concatenated features (see the module docstring), from the backbone's per-level features.

    Args:
        levels: :meth:`GPVBackbone.levels` output for ``B`` instances of ``N`` points.
        class_ids: ``(B,)`` int64, 1-based.
        centred: ``(B, N, 3)`` centred points (metres).
        rgb: ``(B, N, rgb_channels)`` for ``concat`` fusion models, else None.

    Returns:
        ``[(B, 4), (B, 4), (B, 6)]``.
    """
    f = _folded(model)
    B, N, _ = centred.shape
    heads = (model.rot_green, model.rot_red, model.ts_head)
    dense_parts = [levels.fm_0, levels.fm_1] + ([rgb.to(centred.dtype)] if rgb is not None else [])
    dense = torch.cat(dense_parts, dim=-1)  # (B, N, C_dense)
    H = f.width
    x1 = torch.cat([levels.fm_2, levels.fm_3], dim=-1)  # (B, N1, c2 + c3)
    class_rows = f.w_class[class_ids - 1].unsqueeze(1)  # (B, 1, K*H): category + biases, once per instance
    blocked = (not torch.is_grad_enabled() and centred.device.type == "cpu"
               and not torch.compiler.is_exporting() and not torch.compiler.is_compiling())
    if not blocked:  # one pass over the whole batch (autograd, GPU, torch.export / torch.compile)
        p1 = x1 @ f.w_level1  # (B, N1, K*H): multiplied at N1 points
        p2 = levels.fm_4 @ f.w_level2 + class_rows  # (B, N2, K*H)
        h = gather_points(p1, levels.near_1) + gather_points(p2, levels.near_2)
        if torch.compiler.is_exporting():
            # the ONNX graph: a product with a constant weight and no computed bias (a Gemm with one would stay
            # float32 under int8 quantisation: weights dequantised at every run)
            h = (dense @ f.w_dense + h).reshape(B * N, -1)  # 3-D: onnxruntime keeps it a MatMul (no Gemm fusion)
        else:
            h = torch.addmm(h.reshape(B * N, -1), dense.reshape(B * N, -1), f.w_dense)
        xyz = centred.reshape(B * N, 3)
        parts = [h[:, k * H:(k + 1) * H] for k in range(len(heads))]
        for k, w in f.w_xyz:  # only the heads with an xyz input (the translation head)
            parts[k] = parts[k] + xyz @ w
        h = torch.relu(torch.cat(parts, dim=1))
        pooled = [_per_point_tail(h[:, k * H:(k + 1) * H], f.hidden[k]).reshape(B, N, -1).amax(dim=1)
                  for k in range(len(heads))]
    else:
        # CPU, no autograd: instance by instance, in row blocks of (rows, K*H) activations, written into
        # per-thread scratch buffers kept between calls (fresh multi-MiB tensors cost a page fault per
        # 4 KiB page on every call: ~3,000 faults, several ms, per instance at batch 1). The scratch is
        # bounded by one instance: (N1 + N2 + 2 * rows) x K*H values, 17 MiB for gpv.
        n_blocks = -(-N // max(64, HEAD_BLOCK_ELEMENTS // f.w_dense.shape[1]))
        rows = -(-N // n_blocks)  # equal blocks (1028 points: 2 x 514, not 512 + 512 + 4)
        KH, N1, N2 = f.w_dense.shape[1], x1.shape[1], levels.fm_4.shape[1]
        maxima: list[list[torch.Tensor]] = [[] for _ in heads]
        for b in range(B):  # loop over memory blocks (instances x row blocks), each a few large matmuls
            p1 = torch.mm(x1[b], f.w_level1, out=_scratch("p1", (N1, KH), x1))  # (N1, K*H) at N1 points
            p2 = torch.addmm(class_rows[b], levels.fm_4[b], f.w_level2, out=_scratch("p2", (N2, KH), x1))
            best: list[torch.Tensor | None] = [None] * len(heads)
            for s in range(0, N, rows):
                n1, n2 = levels.near_1[b, s:s + rows], levels.near_2[b, s:s + rows]
                h = torch.index_select(p1, 0, n1, out=_scratch("h", (n1.shape[0], KH), x1))
                h += torch.index_select(p2, 0, n2, out=_scratch("h2", (n1.shape[0], KH), x1))
                h = h.addmm_(dense[b, s:s + rows], f.w_dense)
                for k, w in f.w_xyz:
                    h[:, k * H:(k + 1) * H].addmm_(centred[b, s:s + rows], w)
                h = h.relu_()
                for k in range(len(heads)):
                    m = _per_point_tail(h[:, k * H:(k + 1) * H], f.hidden[k]).amax(dim=0)
                    best[k] = m if best[k] is None else torch.maximum(best[k], m, out=best[k])
            for k in range(len(heads)):
                maxima[k].append(best[k])
        pooled = [torch.stack(m) for m in maxima]
    # the last per-point ReLU commutes with the max over points: applied to the pooled rows
    return [head.out(head.dropout(head.fc(torch.relu(p)))) for head, p in zip(heads, pooled)]


_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A contiguous ``shape`` view of a per-thread buffer reused across calls (grown when too small).

    Only for values that never leave :func:`pooled_heads_forward`. Keyed by dtype, device and inference
    mode (an inference-mode tensor cannot be written outside it)."""
    key = (name, like.dtype, like.device, torch.is_inference_mode_enabled())
    buffers = _SCRATCH.__dict__.setdefault("buffers", {})
    numel = math.prod(shape)
    buf = buffers.get(key)
    if buf is None or buf.numel() < numel:
        buf = buffers[key] = torch.empty(numel, dtype=like.dtype, device=like.device)
    return buf[:numel].view(shape)


def _per_point_tail(z: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The per-point layers after the first, BN folded; ReLU between them, none after the last (it is
    applied after the max-pool). ``z`` ``(rows, H)`` -> ``(rows, H_last)``."""
    for i, (wt, b) in enumerate(layers):
        z = torch.addmm(b, z, wt)
        if i < len(layers) - 1:
            z = torch.relu(z)
    return z


# --------------------------------------------------------------------------------------------------
# training: the first per-point layer of every head, split by input rate (autograd)
# --------------------------------------------------------------------------------------------------


def split_first_layers_supported(model: GPVPose) -> bool:
    """Whether :func:`split_first_layers` applies: no fusion or ``concat`` fusion, ``model.fast_heads``."""
    if not getattr(model, "fast_heads", True):
        return False
    return model.fusion is None or model.fusion.kind == "concat"


def split_first_layers(
    model: GPVPose, levels: BackboneLevels, class_ids: torch.Tensor, centred: torch.Tensor,
    rgb: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """The first per-point linear layer of ``rot_green``, ``rot_red``, ``ts_head`` and ``face_recon.block``, as on
    the concatenated features ``x_i`` (module docstring) but split by input rate, in one product per rate for all
    four heads: the same values (up to float rounding) with about a third of the multiply-adds, without building
    ``x`` (``B·N × 1286`` for gpv), and with gradients for every parameter (training; BatchNorm follows each
    head's product unchanged).

    Args:
        levels: :meth:`GPVBackbone.levels` output for ``B`` instances of ``N`` points.
        class_ids: ``(B,)`` int64, 1-based.
        centred: ``(B, N, 3)`` centred points (metres).
        rgb: ``(B, N, rgb_channels)`` for ``concat`` fusion models, else None.

    Returns:
        four ``(B·N, H_k)`` pre-activations, in the order above.
    """
    linears = [model.rot_green.point_mlp.linears[0], model.rot_red.point_mlp.linears[0],
               model.ts_head.point_mlp.linears[0], model.face_recon.block.linears[0]]
    c0, c1, c2, c3, c4 = model.config.widths
    geo = c0 + c1 + c2 + c3 + c4
    rgb_c = rgb.shape[-1] if rgb is not None else 0
    base = geo + rgb_c + model.num_classes
    for lin in linears:
        if lin.in_features not in (base, base + 3):
            raise ValueError(f"split_first_layers: expected {base} or {base + 3} input channels, got "
                             f"{lin.in_features}")
    w = torch.cat([lin.weight[:, :base] for lin in linears])  # (H_total, base)
    b = torch.cat([lin.bias for lin in linears])
    B, N, _ = centred.shape
    dense = [levels.fm_0, levels.fm_1] + ([rgb.to(levels.fm_0.dtype)] if rgb is not None else [])
    w_dense = torch.cat([w[:, :c0 + c1], w[:, geo:geo + rgb_c]], dim=1) if rgb is not None else w[:, :c0 + c1]
    w_l1, w_l2 = w[:, c0 + c1:c0 + c1 + c2 + c3], w[:, c0 + c1 + c2 + c3:geo]
    class_rows = (w[:, geo + rgb_c:base].t() + b)[class_ids - 1].unsqueeze(1)  # (B, 1, H_total)
    p1 = torch.cat([levels.fm_2, levels.fm_3], dim=-1) @ w_l1.t()  # (B, N1, H_total), at N1 points
    p2 = torch.baddbmm(class_rows, levels.fm_4, w_l2.t().expand(B, -1, -1))  # (B, N2, H_total)
    h = gather_points(p1, levels.near_1) + gather_points(p2.to(p1.dtype), levels.near_2)
    h = torch.addmm(h.reshape(B * N, -1), torch.cat(dense, dim=-1).reshape(B * N, -1), w_dense.t())
    sizes = [lin.out_features for lin in linears]
    out = []
    for z, lin in zip(torch.split(h, sizes, dim=1), linears):
        if lin.in_features == base + 3:  # the translation head also sees the centred point
            z = torch.addmm(z, centred.reshape(B * N, 3).to(z.dtype), lin.weight[:, base:].t())
        out.append(z.contiguous())  # column blocks of h: BatchNorm's fast kernels need contiguous rows
    return out
