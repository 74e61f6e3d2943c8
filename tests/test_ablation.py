"""The ablation runner's bookkeeping: finished variants are collected into markdown/JSON tables; locks."""

import json
import os

from demopose.benchmark.ablation import METRIC_KEYS, STUDIES, _claim, run_study


def _fake_metrics(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = {f"{mode}/mean/{k}": value for mode in ("nocs", "exact") for k in METRIC_KEYS}
    path.write_text(json.dumps({"iou_modes": ["nocs", "exact"], "metrics": metrics,
                                "timing": {"fps": 12.5, "frames": 10}}))


def test_finished_variants_become_tables(tmp_path):
    study = STUDIES["demopose"]
    for i, v in enumerate(study.variants):
        _fake_metrics(tmp_path / v.name / "test" / "metrics.json", 0.01 * (i + 1))
    doc = run_study("demopose", tmp_path / "data", tmp_path, steps=7, detector_steps=9)
    assert set(doc["rows"]) == {v.name for v in study.variants}
    row = doc["rows"]["demopose"]
    assert row["nocs"]["iou75"] == 3.0 and row["steps"] == 7 and row["fps"] == 12.5
    assert doc["rows"]["mono"]["steps"] == 9
    assert "model.args.mono_checkpoint=" in " ".join(row["train_command"])
    md = (tmp_path / "results.md").read_text()
    assert "Table 3" in md and "fusion: Hadamard" in md and "| 3.0 |" in md
    assert json.loads((tmp_path / "results.json").read_text())["rows"]["gpv"]["label"].startswith("GPV-Pose")


def test_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path):
    lock = _claim(tmp_path / "v")
    assert lock is not None and lock.read_text() == str(os.getpid())
    assert _claim(tmp_path / "v") is None  # held by a live process (us)
    lock.write_text("999999999")  # a pid that does not exist
    assert _claim(tmp_path / "v") is not None
