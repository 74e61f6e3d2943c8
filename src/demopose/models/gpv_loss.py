"""GPV-Pose training losses, vectorised over the batch.

Terms, definitions and weights follow lolrudy/GPV_Pose (losses/fs_net_loss.py, recon_loss.py,
geometry_loss.py, prop_loss.py, config/config.py; training stage ``PoseNet_only``;
notes/depth_and_eval.md §1.6-§1.9). The total is the plain sum. Each term is an L1-type mean; terms
restricted to some instances (non-symmetric ones, say) are averaged as in the reference (over the
valid instances, or over the batch where the reference divides by the batch size).

Batch dict read by :func:`gpv_loss` (``B`` instances, ``N`` points):

=================  ===========  ==================================================================
key                shape        meaning
=================  ===========  ==================================================================
``points``         (B, N, 3)    the points fed to the model, metres, camera frame
``R``              (B, 3, 3)    ground-truth rotation (object -> camera), det +1
``t``              (B, 3)       ground-truth translation, metres
``size``           (B, 3)       ground-truth metric extents (x, y, z), metres
``sym_info``       (B, 4)       ``[axis_sym, xy_refl, xz_refl, yz_refl]`` (GPV-Pose ``get_sym_info``)
``use_x_faces``    (B,) bool    whether the x± box faces enter the distance, confidence and voting
                                terms (GPV-Pose skips them for mugs)
=================  ===========  ==================================================================

Build ``sym_info`` and ``use_x_faces`` from a category table with :func:`gpv_symmetry_targets`; the
class ids and mean sizes travel inside the :class:`~demopose.models.base.PosePrediction`.

Deliberate differences from the reference code (documented, not silent):

* box-face planes are fitted by confidence-weighted PCA (smallest eigenvector of the weighted
  covariance) instead of least squares on ``z = a x + b y + c``, which degenerates for faces seen
  edge-on (notes §1.6); the plane offset uses the fitted normal consistently;
* gradients flow through the rotation rectification angles (GPV-Pose builds the rotation matrix with
  ``torch.tensor`` and cuts them; HS-Pose keeps them);
* the reconstruction term of asymmetric, non-mirror classes (camera) compares each instance with its
  own points (the reference compares whole batches);
* rectification inside the losses applies the symmetric rule (``c_r = 0``) for axis-symmetric rows;
  only their y faces enter those terms, so this changes nothing that is used.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from demopose._checks import check_shape
from demopose.categories import CategoryTable
from demopose.geometry.rotation import rectify_vectors, rotation_from_vectors
from demopose.models.base import PosePrediction
from demopose.models.gpv import FACE_AXES, FACE_SIGNS, GPVLossWeights

__all__ = ["GPVLossWeights", "gpv_loss", "gpv_symmetry_targets"]


# Confidence targets exp(-k ||.||^2): GPV-Pose fs_net_loss.py (13.7) and recon_loss.py (303.5).
_ROT_CONF_K = 13.7
_FACE_CONF_K = 303.5
# Second-vector weight for symmetric rows in Prop_pm (GPV-Pose prop_loss.py).
_PM_SYM_RED_CONF = 1e-5


def gpv_symmetry_targets(
    table: CategoryTable,
    class_ids: torch.Tensor | np.ndarray,
    handle_visible: torch.Tensor | np.ndarray | None = None,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """GPV-Pose symmetry labels from a category table.

    ``sym_info = [axis_sym, xy_refl, xz_refl, yz_refl]`` (GPV-Pose datasets/load_data.py
    ``get_sym_info``): y-symmetric categories ``[1, 1, 0, 1]``; a handle-rule category (mug)
    ``[0, mirror_xy, 0, 0]`` with the handle visible and ``[1, 0, 0, 0]`` without; other categories
    ``[0, mirror_xy, 0, 0]`` (laptop ``[0, 1, 0, 0]``, camera ``[0, 0, 0, 0]``). GPV-Pose gives the can
    ``[1, 1, 1, 1]``; the xz flag is only read by the disabled ``geo_face`` term, so it is left 0.
    ``use_x_faces`` is False for handle-rule categories (GPV-Pose skips the mug's x± faces).

    Args:
        table: the dataset's category table.
        class_ids: ``(B,)`` 1-based ids.
        handle_visible: ``(B,)`` bool; default all True.
        device: where to put the tensors (default: ``class_ids``'s device, else CPU).

    Returns:
        ``{"sym_info": (B, 4) float32, "use_x_faces": (B,) bool}``.
    """
    if device is None and isinstance(class_ids, torch.Tensor):
        device = class_ids.device
    ids = np.asarray(class_ids.detach().cpu() if isinstance(class_ids, torch.Tensor) else class_ids)
    ids = ids.astype(np.int64).reshape(-1)
    if handle_visible is None:
        hv = np.ones_like(ids, dtype=bool)
    else:
        hv_arr = handle_visible.detach().cpu() if isinstance(handle_visible, torch.Tensor) else handle_visible
        hv = np.asarray(hv_arr).astype(bool).reshape(-1)
    sym_info = np.zeros((len(ids), 4), dtype=np.float32)
    use_x = np.ones(len(ids), dtype=bool)
    for i, (cid, vis) in enumerate(zip(ids, hv)):  # per instance over table lookups (B small, CPU)
        c = table[int(cid)]
        if c.y_symmetric:
            sym_info[i] = (1, 1, 0, 1)
        elif c.handle_rule and not vis:
            sym_info[i] = (1, 0, 0, 0)
        else:
            sym_info[i, 1] = float(c.mirror_xy)
        use_x[i] = not c.handle_rule
    return {
        "sym_info": torch.as_tensor(sym_info, device=device),
        "use_x_faces": torch.as_tensor(use_x, device=device),
    }


def _require(batch: Mapping[str, torch.Tensor], key: str, hint: str = "") -> torch.Tensor:
    if key not in batch:
        raise KeyError(f"gpv_loss batch: missing key {key!r}{hint}")
    return batch[key]


def _fit_planes(points: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted least-squares planes by PCA.

    Args:
        points: ``(B, N, F, 3)`` points voted for each of ``F`` planes.
        weights: ``(B, N, F)`` non-negative weights (detached by the caller).

    Returns:
        (unit normals ``(B, F, 3)``, sign arbitrary; weighted centroids ``(B, F, 3)`` on the planes).
    """
    w = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    mu = (w.unsqueeze(-1) * points).sum(dim=1)  # (B, F, 3)
    d = (points - mu.unsqueeze(1)).double()
    cov = torch.einsum("bnf,bnfi,bnfj->bfij", w.double(), d, d)
    if cov.requires_grad:
        # eigh's backward has 1/(λi - λj) terms: keep a degenerate fit from poisoning the step.
        cov.register_hook(lambda g: torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0))
    _, vecs = torch.linalg.eigh(cov)
    return vecs[..., 0].to(points.dtype), mu


def gpv_loss(
    pred: PosePrediction, batch: Mapping[str, torch.Tensor], weights: GPVLossWeights | None = None
) -> dict[str, torch.Tensor]:
    """All GPV-Pose loss terms for one batch (see the module docstring for the batch keys).

    Args:
        pred: the model's training-mode prediction (needs the training-only outputs).
        batch: ground truth, see the module docstring.
        weights: loss weights; default :class:`GPVLossWeights()`.

    Returns:
        Weighted scalar terms keyed like GPV-Pose's logs (``rot1``, ``rot1_cos``, ``rot2``,
        ``rot2_cos``, ``rot_r_a``, ``tran``, ``size``, ``r_con``, ``recon_per_p``, ``recon_p_f``,
        ``recon_point_vote``, ``recon_point_r``, ``recon_point_t``, ``recon_point_s``,
        ``recon_point_self``, ``geo_point``, ``prop_pm``, ``prop_sym_recon``, ``prop_sym_rt``) and
        their sum ``loss``.

    Raises:
        KeyError: a batch key or a training-only prediction output is missing.
        ValueError: a batch tensor has the wrong shape.
    """
    w = weights or GPVLossWeights()
    o = pred.outputs
    for key in ("recon", "face_normal", "face_dist", "face_conf"):
        if key not in o:
            raise KeyError(f"gpv_loss: prediction has no {key!r}; run the model in training mode (model.train())")
    P = _require(batch, "points")
    dims = check_shape(P, "B N 3", "batch['points']")
    R_gt = _require(batch, "R")
    t_gt = _require(batch, "t")
    s_gt = _require(batch, "size")
    hint = "; build it with demopose.models.gpv_loss.gpv_symmetry_targets(table, class_ids, handle_visible)"
    sym_info = _require(batch, "sym_info", hint)
    use_x = _require(batch, "use_x_faces", hint)
    check_shape(R_gt, "B 3 3", "batch['R']", dims)
    check_shape(t_gt, "B 3", "batch['t']", dims)
    check_shape(s_gt, "B 3", "batch['size']", dims)
    check_shape(sym_info, "B 4", "batch['sym_info']", dims)
    check_shape(use_x, "B", "batch['use_x_faces']", dims)
    dtype, dev = P.dtype, P.device
    B = P.shape[0]
    R_gt, t_gt, s_gt = R_gt.to(dtype), t_gt.to(dtype), s_gt.to(dtype)

    sym = sym_info[:, 0] > 0
    ns = (~sym).to(dtype)  # non-symmetric rows
    nsx = ns * use_x.to(dtype)  # rows whose x faces count
    n_ns = ns.sum().clamp_min(1.0)
    one = torch.ones_like(ns)
    g_gt, r_gt = R_gt[:, :, 1], R_gt[:, :, 0]
    g, r = o["green"], o["red"]
    cg, cr = o["green_conf"], o["red_conf"]
    t_pred = pred.t
    out: dict[str, torch.Tensor] = {}

    # ---- direct regression (fs_net_loss.py) -----------------------------------------------------
    out["rot1"] = w.rot_1 * (g - g_gt).abs().mean()
    out["rot1_cos"] = w.rot_1 * (2.0 * (1.0 - (g * g_gt).sum(-1))).mean()
    out["rot2"] = w.rot_2 * ((r - r_gt).abs().mean(-1) * ns).sum() / n_ns
    out["rot2_cos"] = w.rot_2 * (2.0 * (1.0 - (r * r_gt).sum(-1)) * ns).sum() / n_ns
    out["rot_r_a"] = w.rot_regular * ((g * r).sum(-1).abs() * ns).sum() / n_ns
    out["tran"] = w.tran * (t_pred - t_gt).abs().mean()
    size_res_gt = s_gt - o["mean_size"].to(dtype)
    out["size"] = w.size * (o["size_residual"] - size_res_gt).abs().mean()
    conf_g_gt = torch.exp(-_ROT_CONF_K * (g - g_gt).pow(2).sum(-1))
    conf_r_gt = torch.exp(-_ROT_CONF_K * (r - r_gt).pow(2).sum(-1))
    out["r_con"] = w.r_con * ((cg - conf_g_gt).abs().mean() + ((cr - conf_r_gt).abs() * ns).sum() / B)

    # ---- point-wise box-face predictions (recon_loss.py cal_recon_loss_point) -------------------
    p_can = (P - t_gt.unsqueeze(1)) @ R_gt  # (B, N, 3) = R^T (p - t)
    axes = torch.tensor(FACE_AXES, device=dev)
    signs = torch.tensor(FACE_SIGNS, dtype=dtype, device=dev)
    n_gt = R_gt[:, :, axes].transpose(1, 2) * signs[:, None]  # (B, 6, 3) outward face normals
    half = s_gt[:, axes] / 2  # (B, 6)
    d_gt = half.unsqueeze(1) - signs * p_can[:, :, axes]  # (B, N, 6) distance to each face
    f_n, f_d, f_c = o["face_normal"], o["face_dist"], o["face_conf"]
    mask_n = torch.stack([one, ns, ns, ns, ns, one], dim=1)  # normals: x, z faces iff non-symmetric
    mask_x = torch.stack([one, nsx, ns, nsx, ns, one], dim=1)  # + x faces skipped for handle classes
    denom = 6.0 * B
    res_normal = (1.0 - (f_n * n_gt.unsqueeze(1)).sum(-1)).mean(1)  # (B, 6)
    res_dist = (f_d - d_gt).abs().mean(1)
    out["recon_per_p"] = (w.recon_n * (res_normal * mask_n).sum() + w.recon_d * (res_dist * mask_x).sum()) / denom
    conf_gt = torch.exp(-_FACE_CONF_K * (f_n * f_d.unsqueeze(-1) - n_gt.unsqueeze(1) * d_gt.unsqueeze(-1))
                        .pow(2).sum(-1))
    out["recon_p_f"] = w.recon_f * ((f_c - conf_gt).abs().mean(1) * mask_x).sum() / denom

    # ---- box voting and its consistency with the pose (recon_loss.py cal_recon_loss_vote) --------
    voted = P.unsqueeze(2) + f_n * f_d.unsqueeze(-1)  # (B, N, 6, 3) points projected onto each face
    n_fit, mu = _fit_planes(voted, f_c.detach())
    flip = torch.where((n_fit * n_gt).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(dtype)
    n_fit = n_fit * flip  # outward, agreeing with the ground-truth face
    dn = -(n_fit * mu).sum(-1, keepdim=True) * n_fit  # negated foot of the origin's perpendicular
    dn_gt = -((n_gt * t_gt.unsqueeze(1)).sum(-1, keepdim=True) + half.unsqueeze(-1)) * n_gt
    out["recon_point_vote"] = w.recon_v * ((dn - dn_gt).abs().mean(-1) * mask_x).sum() / denom

    y_r, x_r = rectify_vectors(g, r, cg.detach(), cr.detach(), sym)
    z_r = torch.cross(x_r, y_r, dim=-1)
    n_from_pose = torch.stack([y_r, x_r, z_r, -x_r, -z_r, -y_r], dim=1)  # (B, 6, 3)
    out["recon_point_r"] = w.recon_bb_r * ((n_fit - n_from_pose).abs().mean(-1) * mask_x).sum() / denom

    dist_t = (n_fit * (t_pred.unsqueeze(1) - mu)).sum(-1).abs()  # (B, 6) |t_pred to face plane|
    pair_t = (
        (dist_t[:, 5] - dist_t[:, 0]).abs()
        + (dist_t[:, 3] - dist_t[:, 1]).abs() * nsx
        + (dist_t[:, 4] - dist_t[:, 2]).abs() * ns
    )
    out["recon_point_t"] = w.recon_bb_t * pair_t.sum() / denom
    s_pred_half = pred.size[:, axes] / 2
    out["recon_point_s"] = w.recon_bb_s * ((s_pred_half - dist_t).abs() * mask_x).sum() / denom
    par = (
        (n_fit[:, 0] + n_fit[:, 5]).abs().mean(-1)
        + (n_fit[:, 1] + n_fit[:, 3]).abs().mean(-1) * nsx
        + (n_fit[:, 2] + n_fit[:, 4]).abs().mean(-1) * ns
    )
    perp = (
        ((n_fit[:, 0] * n_fit[:, 1]).sum(-1).abs() + (n_fit[:, 5] * n_fit[:, 3]).sum(-1).abs()) * nsx
        + ((n_fit[:, 0] * n_fit[:, 2]).sum(-1).abs() + (n_fit[:, 5] * n_fit[:, 4]).sum(-1).abs()) * ns
    )
    out["recon_point_self"] = w.recon_bb_self * (par + perp).sum() / denom

    # ---- geometric consistency (geometry_loss.py cal_geo_loss_point) -----------------------------
    rel = P - t_pred.unsqueeze(1)  # (B, N, 3)
    geo_y = ((rel * g.unsqueeze(1)).sum(-1) - p_can[..., 1]).abs().mean()
    geo_x = (((rel * r.unsqueeze(1)).sum(-1) - p_can[..., 0]).abs().mean(1) * ns).sum() / n_ns
    out["geo_point"] = w.geo_p * (geo_y + geo_x)

    # ---- point matching through the rectified rotation (prop_loss.py) ----------------------------
    red_pm = torch.where(sym.unsqueeze(-1), r_gt, r)
    cr_pm = torch.where(sym, torch.full_like(cr, _PM_SYM_RED_CONF), cr.detach())
    R_pm = rotation_from_vectors(*rectify_vectors(g, red_pm, cg.detach(), cr_pm))
    out["prop_pm"] = w.prop_pm * ((rel @ R_pm) - p_can).abs().mean()

    # ---- symmetry-aware reconstruction (prop_loss.py prop_sym_matching_loss) ---------------------
    recon = o["recon"]
    refl_any = (sym_info[:, 1:] > 0).any(dim=1)
    case_axis = sym & refl_any  # bottle, bowl, can: counterpart = 180° about y
    case_mirror = ~sym & (sym_info[:, 1] > 0)  # laptop, mug with handle: mirror z
    case_self = ~sym & ~case_mirror  # no symmetry: the point itself
    flip_axis = torch.tensor([-1.0, 1.0, -1.0], dtype=dtype, device=dev)
    flip_mirror = torch.tensor([1.0, 1.0, -1.0], dtype=dtype, device=dev)
    cano_target = torch.where(case_axis[:, None, None], p_can * flip_axis, p_can * flip_mirror)
    target = cano_target @ R_gt.transpose(1, 2) + t_gt.unsqueeze(1)
    target = torch.where(case_self[:, None, None], P, target)
    recon_err = (recon - target).abs().mean((1, 2))
    valid_recon = (case_axis | case_mirror | case_self).to(dtype)
    out["prop_sym_recon"] = w.prop_sym * (recon_err * valid_recon).sum() / B
    along = (rel * g.unsqueeze(1)).sum(-1, keepdim=True) * g.unsqueeze(1)
    refl_axis = P + 2.0 * (along - rel)  # reflection through the predicted y axis line through t
    z_pred = F.normalize(torch.cross(r, g, dim=-1), dim=-1, eps=1e-8).unsqueeze(1)
    refl_mirror = P - 2.0 * (rel * z_pred).sum(-1, keepdim=True) * z_pred  # across the predicted xy plane
    refl = torch.where(case_axis[:, None, None], refl_axis, refl_mirror)
    rt_err = (refl - recon).abs().mean((1, 2))
    out["prop_sym_rt"] = w.prop_sym * (rt_err * (case_axis | case_mirror).to(dtype)).sum() / B

    out["loss"] = torch.stack(list(out.values())).sum()
    return out
