"""`torchrun --nproc_per_node 2 -m demopose train gpv_synth_small` to the end: the real Trainer with the evaluation
hook and SyncBatchNorm in two gloo processes on a tiny generated dataset; model_final.pt is written and every
rank records the same validation values and takes the same best-checkpoint decisions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from demopose.engine.checkpoint import load_checkpoint


def test_torchrun_training_with_evaluation_and_sync_bn(tiny_synth, tmp_path):
    data = tiny_synth(4, 2)
    run = tmp_path / "run"
    script = Path(__file__).parent / "ddp_eval_training.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           "train", "gpv_synth_small", "--data", str(data), "--out", str(run), "--no-progress", "--sync-bn",
           "train.max_steps=4", "train.batch_size=2", "train.num_workers=0", "train.checkpoint_every=2",
           "train.eval_every=2", "train.val_frames=2", "data.n_points=128", "--best-key", "nocs/mean/iou25"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    assert (run / "model_final.pt").is_file() and (run / "last.pt").is_file()
    assert load_checkpoint(run / "model_final.pt")["step"] == 4
    logs = [json.loads((run / f"decisions_rank{k}.json").read_text()) for k in range(2)]
    assert [e["step"] for e in logs[0]] == [2, 4]
    assert logs[0] == logs[1]  # same values recorded, same best, same checkpoints saved on both ranks
    assert logs[0][0]["saved"] == ["best.pt"]  # the first finite value is the best so far
    assert (run / "best.pt").is_file()
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=False)  # a full training state
    assert best["config"]["train"]["sync_bn"] is True
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 4 and "val/nocs/mean/iou25" in lines[-1]
    assert lines[-1]["val/nocs/mean/iou25"] == logs[0][-1]["val"]["val/nocs/mean/iou25"]
    # the converted BatchNorms keep the plain state-dict keys: the weights load into a fresh model
    from demopose.engine.checkpoint import load_model

    model = load_model(run / "model_final.pt")
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
