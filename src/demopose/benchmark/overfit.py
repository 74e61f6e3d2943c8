"""Overfit checks: can a model family fit a few dozen fixed training instances?

A family that cannot drive its training error to almost nothing on 32 instances seen every step has a bug (a
wrong target, a broken gradient, a head that cannot express the answer), not a budget problem: DESIGN.md,
"Training on a small machine". The check:

* pose networks (gpv, DeMo-Pose with any fusion, CleanPose / AG-Pose): ``n`` annotated instances of the training
  split, sampled once with fixed seeds and no augmentation (no mask noise, no 3D augmentation), one batch of all
  of them every step, the family's own loss, Adam with its learning rate decayed by a cosine to 1 % over the
  run, and every dropout layer off (the check asks whether the network can fit, not how it generalises);
  then in eval mode (running BatchNorm statistics, recomputed in fp32 on the instances after a bf16 fit, as
  ``demopose train`` does: :mod:`demopose.engine.precise_bn`), the prediction averaged over ``draws`` random
  draws of the model's own randomness (GPV-Pose's random pooling subsets move a fitted translation by about half a
  centimetre per draw, so one draw cannot show a sub-centimetre fit: ``benchmarks/overfit_diagnostics.py``;
  the single-draw share is reported beside it), on the same
  samples: each instance's rotation error (the y-axis angle for y-symmetric ones, as the NOCS protocol) and
  translation error. Passed: every instance (``pass_fraction``, default all) within 5° and 1 cm;
* the monocular detector: ``n`` whole frames without augmentation, then the 2D AP50 of its detections on them
  (passed: > 0.9).

:func:`overfit_pose` / :func:`overfit_detector` run one check and return its record;
``python benchmarks/overfit.py`` runs every family and writes ``benchmarks/results/overfit.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["OverfitResult", "overfit_detector", "overfit_pose"]


@dataclass
class OverfitResult:
    """One family's check: the losses along the way and the final errors (degrees, centimetres) or AP50."""

    model: str
    overrides: list[str]
    instances: int
    steps: int
    seconds: float
    loss_first: float
    loss_last: float
    passed: bool
    rotation_deg: list[float] | None = None
    translation_cm: list[float] | None = None
    within_5deg_1cm: float | None = None
    within_5deg_1cm_single_draw: float | None = None
    draws: int | None = None
    ap50: float | None = None
    loss_curve: list[tuple[int, float]] | None = None
    precise_bn: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("rotation_deg", "translation_cm"):
            if out[key] is not None:
                v = np.asarray(out[key])
                out[f"{key}_median"], out[f"{key}_max"] = float(np.median(v)), float(v.max())
        return out


def _fixed_instances(cfg, model, n: int):
    """The first ``n`` annotated instances of the training split, sampled once (fixed seeds, no augmentation)."""
    from demopose.data.frame import FrameSubset
    from demopose.data.instances import AugmentConfig, InstanceDataset, collate_instances
    from demopose.data.mesh_points import MeshPointSource
    from demopose.engine.build import build_frames

    frames = build_frames(cfg, cfg.data.train_subset)
    frames = FrameSubset(frames, range(min(len(frames), max(4, n))))
    rgb = model.rgb_size or cfg.data.get("rgb_size")  # the PoseModel contract (demopose.models.base)
    n_mesh = int(model.mesh_points)
    still = AugmentConfig(p_scale=0.0, p_rt=0.0, p_cage=0.0, p_noise=0.0, p_mask_noise=0.0)
    ds = InstanceDataset(frames, n_points=int(cfg.data.n_points), train=True, augment=still,
                         rgb_size=int(rgb) if rgb else None, image_size=model.image_size,
                         model_points=MeshPointSource(n_mesh, cache_dir=cfg.data.get("mesh_cache")) if n_mesh else None,
                         cache=True)
    if len(ds) < n:
        raise ValueError(f"overfit: the training split has {len(ds)} instances in its first frames, fewer than {n}")
    return collate_instances([ds[(i, i)] for i in range(n)])


def _fit(model, batch, opt, steps: int, precision: str, clip: float,
         log_every: int) -> tuple[list[tuple[int, float]], float]:
    """``steps`` optimiser steps of ``model`` on the one fixed ``batch`` (its own loss, gradient norm clipped at
    ``clip``, the forward under ``precision``); returns the loss curve and the seconds taken."""
    from demopose.engine.precision import autocast, resolve_precision
    from demopose.engine.trainer import float32_outputs

    precision = resolve_precision(precision)
    params = [p for group in opt.param_groups for p in group["params"]]
    # cosine decay to 1 % of the learning rate: a constant rate leaves Adam's steps as a noise floor of about a
    # centimetre on the translation
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.01 + 0.99 * 0.5 * (1.0 + float(np.cos(np.pi * min(s, steps) / steps))))
    curve: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        with autocast(precision):
            pred = model(batch)
        total = sum(model.loss(float32_outputs(pred), batch).values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        sched.step()
        if step == 1 or step % log_every == 0 or step == steps:
            curve.append((step, float(total.detach())))
    return curve, time.perf_counter() - t0


def _errors(pred, batch) -> tuple[np.ndarray, np.ndarray]:
    from demopose.geometry.rotation import rotation_angle_deg, y_axis_angle_deg

    R, R_gt = pred.R.detach().float(), batch["R"].float()
    sym = batch["y_symmetric"].bool()
    rot = torch.where(sym, y_axis_angle_deg(R, R_gt), rotation_angle_deg(R, R_gt))
    trans = (pred.t.detach().float() - batch["t"].float()).norm(dim=-1) * 100
    return rot.numpy(), trans.numpy()


def overfit_pose(config: str, overrides: list[str] | None = None, data: str = "", instances: int = 32,
                 steps: int = 300, lr: float = 1e-3, precision: str = "auto", seed: int = 0,
                 pass_fraction: float = 1.0, log_every: int = 25, dropout: bool = False,
                 draws: int = 8) -> OverfitResult:
    """Fit ``instances`` fixed instances of ``data``'s training split with the model of packaged (or file) config
    ``config`` plus ``overrides``, for ``steps`` Adam steps from ``lr`` (cosine decay); see the module docstring.
    ``dropout``: keep the model's dropout layers on while fitting (off by default). ``draws``: eval-mode
    predictions averaged over that many draws of the model's randomness (1: a single draw)."""
    from demopose.engine import load_config
    from demopose.engine.build import build_model_from_config
    from demopose.engine.precise_bn import update_bn_stats, wants_precise_bn
    from demopose.engine.precision import resolve_precision
    from demopose.engine.trainer import seed_everything

    overrides = list(overrides or [])
    cfg = load_config(config, [*overrides, f"data.root={data}"])
    seed_everything(seed)
    model = build_model_from_config(cfg)
    if not dropout:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    batch = _fixed_instances(cfg, model, instances)
    params = [p for p in model.parameters() if p.requires_grad]
    curve, seconds = _fit(model, batch, torch.optim.Adam(params, lr=lr), steps, precision, 5.0, log_every)
    # as `demopose train` does (train.precise_bn=auto): BatchNorm statistics collected under bf16 do not fit fp32
    # inference, so they are recomputed in fp32 on the fitted instances (4 passes: the random pooling differs)
    precise_bn = wants_precise_bn("auto", resolve_precision(precision), model)
    if precise_bn:
        update_bn_stats(model, [batch] * 4)
    pred, single = _averaged_prediction(model, batch, draws)
    rot, trans = _errors(pred, batch)
    within = float(np.mean((rot < 5.0) & (trans < 1.0)))
    r1, t1 = _errors(single, batch)
    return OverfitResult(model=str(cfg.model.name), overrides=overrides, instances=instances, steps=steps,
                         seconds=round(seconds, 1), loss_first=curve[0][1], loss_last=curve[-1][1],
                         passed=within >= pass_fraction, rotation_deg=rot.round(3).tolist(),
                         translation_cm=trans.round(4).tolist(), within_5deg_1cm=within,
                         within_5deg_1cm_single_draw=float(np.mean((r1 < 5.0) & (t1 < 1.0))), draws=draws,
                         loss_curve=curve, precise_bn=precise_bn)


@dataclass
class _Pose:
    R: torch.Tensor
    t: torch.Tensor


def _averaged_prediction(model, batch, draws: int) -> tuple[_Pose, _Pose]:
    """Eval-mode poses averaged over ``draws`` seeded draws of the model's randomness (translations averaged,
    rotations as the nearest rotation to the mean matrix), and the first draw alone."""
    from demopose.geometry.rotation import orthonormalize

    model.eval()
    Rs, ts = [], []
    with torch.no_grad():
        for k in range(max(1, draws)):
            pred = model(batch, generator=torch.Generator().manual_seed(k))
            Rs.append(pred.R.detach().double())
            ts.append(pred.t.detach().double())
    mean = _Pose(orthonormalize(torch.stack(Rs).mean(0)), torch.stack(ts).mean(0))
    return mean, _Pose(Rs[0], ts[0])


def overfit_detector(config: str = "mono_synth_small", overrides: list[str] | None = None, data: str = "",
                     images: int = 16, steps: int = 300, lr: float = 2e-3, precision: str = "auto",
                     seed: int = 0, log_every: int = 25) -> OverfitResult:
    """Fit the monocular detector to ``images`` fixed frames (no augmentation); passed when its 2D AP50 on
    them exceeds 0.9."""
    from demopose.data.detection_samples import FrameDetectionDataset
    from demopose.data.frame import FrameSubset
    from demopose.engine import load_config
    from demopose.engine.build import build_collate, build_frames, build_model_from_config, data_image_size
    from demopose.engine.trainer import seed_everything
    from demopose.evaluation import NOCSEvaluator
    from demopose.pipeline import gt_instances, run_inference

    overrides = list(overrides or [])
    cfg = load_config(config, [*overrides, f"data.root={data}"])
    seed_everything(seed)
    model = build_model_from_config(cfg)
    frames = FrameSubset(build_frames(cfg, cfg.data.train_subset), range(images))
    ds = FrameDetectionDataset(frames, data_image_size(cfg, model), train=False)
    batch = build_collate(ds)([ds[i] for i in range(len(ds))])
    params = [p for p in model.parameters() if p.requires_grad]
    curve, seconds = _fit(model, batch, torch.optim.AdamW(params, lr=lr, weight_decay=0.0), steps, precision, 35.0,
                          log_every)
    metrics = run_inference(model, frames, gt_instances, NOCSEvaluator(model.categories), progress=False)
    ap50 = float(metrics["det2d/mean/ap50"])
    return OverfitResult(model=str(cfg.model.name), overrides=overrides, instances=images, steps=steps,
                         seconds=round(seconds, 1), loss_first=curve[0][1], loss_last=curve[-1][1],
                         passed=ap50 > 0.9, ap50=ap50, loss_curve=curve)
