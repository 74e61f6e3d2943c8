"""How much does a trained DeMo-Pose (concat fusion) use its RGB features?

Two measurements on held-out instances (ground-truth masks):

1. weight share: for each head layer that reads the fused per-point features, the Frobenius norm of its
   RGB columns relative to its geometric columns;
2. output sensitivity: the change of the predicted pose when the sampled RGB features are replaced by
   zeros (rotation in degrees, translation in cm), and the error of both against the ground truth (with
   ``rgb_norm: layernorm`` the zeros still pass the LayerNorm, whose output is then its bias for every point: a
   constant, no RGB information; the weight shares of such a model compare normalised RGB columns, unit RMS per
   channel, with the geometric ones);
3. accuracy with and without the RGB features: the share of instances within 10°/5 cm and 5°/5 cm of the
   ground truth (the y-axis angle for y-symmetric instances, as the NOCS protocol).

Usage::

    python benchmarks/demopose_rgb_usage.py CHECKPOINT DATA_ROOT [--subset real_test] [--frames 30]
        [--out benchmarks/results/ablation_demopose/rgb_usage.json]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from demopose.data.frame import FrameSubset
from demopose.data.instances import InstanceDataset, collate_instances
from demopose.data.nocs import NOCSDataset
from demopose.engine.checkpoint import load_model
from demopose.evaluation.errors import rotation_error_deg
from demopose.io import write_json_atomic


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--subset", default="real_test")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--out", default="benchmarks/results/ablation_demopose/rgb_usage.json")
    args = ap.parse_args(argv)

    model = load_model(args.checkpoint)
    if model.config.fusion != "concat":
        raise SystemExit("this diagnostic reads the concatenation layout; the checkpoint fuses by "
                         f"{model.config.fusion!r}")
    c2, c1 = model.warm_start_insert()
    shares = {}
    for name, p in model.pose.named_parameters():
        if p.dim() == 2 and p.shape[1] >= c2 + c1 and name.endswith("linears.0.weight"):
            geo, rgb = p.detach()[:, :c2], p.detach()[:, c2:c2 + c1]
            shares[name] = {"rgb_over_geometric_norm": round(float(rgb.norm() / geo.norm()), 4),
                            "per_channel_rgb_over_geometric": round(float((rgb.norm() / c1 ** 0.5)
                                                                          / (geo.norm() / c2 ** 0.5)), 4)}
    all_frames = NOCSDataset(args.data, args.subset, load_nocs=False)
    frames = FrameSubset(all_frames, range(min(args.frames, len(all_frames))))
    ds = InstanceDataset(frames, train=False, image_size=model.image_size)
    rot_change, t_change, err_with, err_without = [], [], [], []
    rot_err = {"with_rgb": [], "rgb_zeroed": []}
    for start in range(0, len(ds), 16):
        batch = collate_instances([ds[i] for i in range(start, min(start + 16, len(ds)))])
        with torch.no_grad():
            rgb = model.point_features(batch["image"], batch["image_pixels"], batch["image_index"])
            a = model.pose({**batch, "rgb_point_features": rgb}, generator=torch.Generator().manual_seed(0))
            b = model.pose({**batch, "rgb_point_features": torch.zeros_like(rgb)},
                           generator=torch.Generator().manual_seed(0))
        Ra, Rb = a.R.double().numpy(), b.R.double().numpy()
        rot_change += np.diagonal(rotation_error_deg(Ra, Rb)).tolist()
        t_change += ((a.t - b.t).norm(dim=1) * 100).tolist()
        err_with += ((a.t - batch["t"]).norm(dim=1) * 100).tolist()
        err_without += ((b.t - batch["t"]).norm(dim=1) * 100).tolist()
        sym = batch["y_symmetric"].numpy().astype(bool)
        R_gt = batch["R"].double().numpy()
        for key, R in (("with_rgb", Ra), ("rgb_zeroed", Rb)):
            rot_err[key] += [float(rotation_error_deg(R[i:i + 1], R_gt[i:i + 1], sym[i:i + 1])[0, 0])
                             for i in range(len(R))]
    doc = {
        "checkpoint": args.checkpoint, "data": args.data, "subset": args.subset, "instances": len(ds),
        "head_weight_share": shares,
        "zeroing_rgb_changes": {"rotation_deg_median": round(float(np.median(rot_change)), 3),
                                "rotation_deg_p90": round(float(np.percentile(rot_change, 90)), 3),
                                "translation_cm_median": round(float(np.median(t_change)), 3),
                                "translation_cm_p90": round(float(np.percentile(t_change, 90)), 3)},
        "translation_error_cm_median": {"with_rgb": round(float(np.median(err_with)), 3),
                                        "rgb_zeroed": round(float(np.median(err_without)), 3)},
        "rotation_error_deg_median": {k: round(float(np.median(v)), 3) for k, v in rot_err.items()},
        "within": {k: {f"{deg}deg{cm}cm": round(float(np.mean((np.asarray(rot_err[k]) <= deg)
                                                             & (np.asarray(t) <= cm))), 4)
                       for deg, cm in ((10, 5), (5, 5), (5, 2))}
                   for k, t in (("with_rgb", err_with), ("rgb_zeroed", err_without))},
        "command": "python " + " ".join(sys.argv),
    }
    write_json_atomic(args.out, doc)
    print(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
