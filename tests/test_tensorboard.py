"""TensorBoard logging (the ``logging`` and ``dev`` extras): the event file the trainer writes is read back."""

import json
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from demopose.engine import default_hooks

sys.path.insert(0, str(Path(__file__).parent))
from toy_training import build  # noqa: E402


def test_event_file_holds_the_logged_scalars(tmp_path):
    hooks = default_hooks(checkpoint_every=0, log_every=2, eval_fn=lambda t: {"score": t.step / 10},
                          eval_every=3, best_key="score", progress=False)
    build(tmp_path, max_steps=6, hooks=hooks).train()
    files = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"loss/total", "loss/mse", "lr", "val/score"} <= set(tags)
    assert [e.step for e in acc.Scalars("val/score")] == [3, 6]
    assert [e.value for e in acc.Scalars("val/score")] == pytest.approx([0.3, 0.6])
    # the same values as the JSONL log, at the same steps (every 2 steps and at the evaluation steps)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    tb = {e.step: e.value for e in acc.Scalars("loss/total")}
    assert sorted(tb) == [2, 3, 4, 6]
    for line in lines:
        assert tb[line["step"]] == pytest.approx(line["loss/total"], rel=1e-6)
