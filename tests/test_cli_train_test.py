"""`demopose train` / `demopose test` end to end on a tiny generated dataset (CPU, seconds)."""

import json

import pytest
import torch

from demopose.cli import main


@pytest.fixture(scope="module")
def tiny_data(tiny_synth):
    return tiny_synth(4, 2)


def test_train_resume_and_test(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "gpv_synth_small", "--data", str(tiny_data), "--out", str(run), "--no-progress",
            "train.batch_size=2", "train.num_workers=0", "train.checkpoint_every=2",
            "train.eval_every=0", "train.val_frames=2", "data.n_points=128"]
    assert main([*args, "train.max_steps=4"]) == 0
    assert (run / "last.pt").is_file() and (run / "config.yaml").is_file()
    assert set(torch.load(run / "model_final.pt", weights_only=False)) == {"model", "config", "step", "config_version"}
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 4 and "val/nocs/mean/iou25" in lines[-1]  # validated on real_val (its 2 frames)
    # a second run with a larger budget resumes from step 4 instead of starting over
    assert main([*args, "train.max_steps=6"]) == 0
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6 and len(steps) == len(set(steps))

    out = tmp_path / "test"
    assert main(["test", "gpv_synth_small", str(run / "last.pt"), str(tiny_data), "--out", str(out),
                 "--no-progress", "--no-plots", "data.n_points=128"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["metrics"]["nocs/mean/iou25"] is not None
    assert len(list((out / "results").glob("*.pkl"))) == 2
    # the written pkls score identically through `demopose eval`
    assert main(["eval", str(out / "results"), "--iou", "nocs", "--out", str(tmp_path / "ev"), "--no-plots",
                 "--no-progress"]) == 0
    doc2 = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert doc2["metrics"] == doc["metrics"]
    # per-object errors: one row per ground-truth object, the same tally from both commands
    objects = json.loads((out / "objects.json").read_text())
    assert len(objects["objects"]) == objects["summary"]["objects"] > 0
    assert doc["objects_within"] == doc2["objects_within"] == objects["summary"]
    assert "10°/5 cm" in capsys.readouterr().out
    # a rerun on fewer frames leaves only its own results pkls
    assert main(["test", "gpv_synth_small", str(run / "last.pt"), str(tiny_data), "--out", str(out),
                 "--no-progress", "--no-plots", "--max-frames", "1", "data.n_points=128"]) == 0
    assert len(list((out / "results").glob("*.pkl"))) == 1


def test_train_reports_config_errors(tmp_path, capsys):
    assert main(["train", "gpv_synth_small", "--out", str(tmp_path), "train.max_stepz=3"]) == 1
    assert "unknown config key 'train.max_stepz'" in capsys.readouterr().err
    assert main(["train", "gpv_synth_small", "--out", str(tmp_path)]) == 1
    assert "data.root is not set" in capsys.readouterr().err
    assert main(["train", "no_such_config"]) == 1
    assert "not found" in capsys.readouterr().err


def test_missing_validation_split(tiny_data, tmp_path, capsys, caplog):
    """Training never falls back to the test split: a missing val split stops it at once, naming the split and the
    command that makes it; with train.eval_every=0 it trains without validation."""
    args = ["train", "gpv_synth_small", "--data", str(tiny_data), "--no-progress", "train.batch_size=2",
            "train.num_workers=0", "train.max_steps=1", "data.n_points=128", "data.val_subset=real_holdout"]
    assert main([*args, "--out", str(tmp_path / "a"), "train.eval_every=1"]) == 1
    err = capsys.readouterr().err
    assert "data.val_subset='real_holdout'" in err and "--split holdout" in err and "train.eval_every=0" in err
    assert not (tmp_path / "a").exists()  # nothing was built or written
    assert main([*args, "--out", str(tmp_path / "b"), "train.eval_every=0"]) == 0
    assert "training without validation" in caplog.text
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert not any(k.startswith("val/") for r in lines for k in r)


def test_continue_from_weights_only_checkpoint_at_its_step(tiny_data, tmp_path):
    """train.init_from + train.start_step=init: the second run begins at the first's step, with the learning rate
    the schedule has there (no second warm-up), logs from there, and ends at max_steps in total."""
    common = ["--data", str(tiny_data), "--no-progress", "train.batch_size=2", "train.num_workers=0",
              "train.eval_every=0", "train.val_frames=1", "data.n_points=128", "train.log_every=1",
              "train.scheduler.warmup_steps=4", "train.max_steps=8"]
    first = tmp_path / "first"
    assert main(["train", "gpv_synth_small", "--out", str(first), *common, "train.max_steps=5"]) == 0
    second = tmp_path / "second"
    assert main(["train", "gpv_synth_small", "--out", str(second), *common,
                 f"train.init_from={first / 'model_final.pt'}", "train.start_step=init"]) == 0
    lines = [json.loads(x) for x in (second / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "lr" in r] == [6, 7, 8]
    full = tmp_path / "full"  # the same schedule in one piece logs the same learning rates at those steps
    assert main(["train", "gpv_synth_small", "--out", str(full), *common]) == 0
    want = {r["step"]: r["lr"] for r in map(json.loads, (full / "metrics.jsonl").read_text().splitlines()) if "lr" in r}
    assert [r["lr"] for r in lines if "lr" in r] == pytest.approx([want[6], want[7], want[8]], rel=1e-9)
    with pytest.raises(ValueError, match="start_step"):
        from demopose.cli.train import _start_step
        from demopose.engine import load_config

        _start_step(load_config("gpv_synth_small", ["train.start_step=init"]), None)
