"""The monocular detector trained on generated frames: overfitting and the engine / CLI path."""

import json

import numpy as np
import pytest
import torch

from demopose.cli import main
from demopose.data.detection_samples import FrameDetectionDataset, collate_detection, frame_targets
from demopose.data.nocs import NOCSDataset
from demopose.evaluation.detection2d import box_iou_np
from demopose.models import build_model

INPUT = (160, 128)


@pytest.fixture(scope="module")
def tiny_data(tiny_synth):
    return tiny_synth(3, 2)


def _fit(root, steps):
    torch.manual_seed(0)
    frames = NOCSDataset(root, "real_train", load_nocs=False)
    frames = [frames[i] for i in range(len(frames))]
    ds = FrameDetectionDataset(frames, INPUT, train=False)
    batch = collate_detection([ds[i] for i in range(len(ds))])
    model = build_model("mono_small", input_size=INPUT)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    totals = []
    for _ in range(steps):
        model.train()
        losses = model.loss(model(batch), batch)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 35.0)
        opt.step()
        totals.append(float(total.detach()))
    return model, frames, totals


def test_overfit_smoke_loss_drops(tiny_data):
    _, _, totals = _fit(tiny_data, 12)
    assert totals[-1] < 0.5 * totals[0]


@pytest.mark.slow
def test_overfit_few_frames_keypoints_within_2px(tiny_data):
    model, frames, _ = _fit(tiny_data, 200)
    errors = []
    for f in frames:
        det = model.detect_frame(f)
        gt = frame_targets(f)
        iou = box_iou_np(gt.boxes, det.boxes)
        for g in range(len(gt.labels)):
            same = det.class_ids == gt.labels[g] + 1
            j = int(np.argmax(np.where(same, iou[g], -1)))
            assert same[j] and iou[g, j] > 0.7
            errors.append(np.linalg.norm(det.keypoints[j] - gt.keypoints[g], axis=-1).mean())
    assert max(errors) < 2.0, errors


def test_cli_train_and_test_mono(tiny_data, tmp_path):
    run = tmp_path / "run"
    size = ["model.args.input_size=[96,96]"]  # the data pipeline reads the model's input size
    assert main(["train", "mono_synth_small", "--data", str(tiny_data), "--out", str(run), "--no-progress",
                 "train.batch_size=2", "train.num_workers=0", "train.max_steps=2", "train.checkpoint_every=2",
                 "train.eval_every=0", "train.val_frames=2", *size]) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 2 and "loss/keypoints" in json.dumps(lines)
    out = tmp_path / "test"
    assert main(["test", "mono_synth_small", str(run / "last.pt"), str(tiny_data), "--out", str(out),
                 "--no-progress", "--no-plots", *size]) == 0
    assert len(list((out / "results").glob("*.pkl"))) == 2
    det2d = json.loads((out / "metrics.json").read_text())["detection_2d"]
    assert "det2d/mean/ap50" in det2d and "det2d/kpt_px" in det2d
