"""The ablation runner: per-seed runs from scratch collected into mean ± std tables with the seed-spread mark;
resuming seed by seed; locks; a real study run at a budget of a few steps."""

import json
import os

import pytest

from demopose.benchmark.ablation import (
    CLAIM_SEEDS,
    METRIC_KEYS,
    OTHER_SEEDS,
    STUDIES,
    _claim,
    run_study,
    seed_count,
    within_spread,
)


def _fake_metrics(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = {f"{mode}/mean/{k}": value for mode in ("nocs", "exact") for k in METRIC_KEYS}
    path.write_text(json.dumps({"iou_modes": ["nocs", "exact"], "metrics": metrics,
                                "timing": {"fps": 12.5, "frames": 10}}))


def test_seed_counts_follow_the_claims():
    study = {v.name: v for v in STUDIES["demopose"].variants} | \
        {f"cp_{v.name}": v for v in STUDIES["cleanpose"].variants}
    claims = {n for n, v in study.items() if v.claim}
    assert claims == {"gpv", "demopose", "demopose_no_mpl", "cp_agpose", "cp_cleanpose"}
    assert seed_count(study["gpv"]) == CLAIM_SEEDS == 3 and seed_count(study["fusion_add"]) == OTHER_SEEDS == 2
    assert seed_count(study["fusion_add"], 5) == 5
    with pytest.raises(ValueError, match="at least 1"):
        seed_count(study["gpv"], 0)


def test_within_spread():
    assert within_spread(10.0, 1.0, 11.0, 1.0) is True  # |1| < sqrt(2)
    assert within_spread(10.0, 1.0, 12.0, 1.0) is False
    assert within_spread(10.0, None, 10.5, 1.0) is None  # one seed: no spread measured


def test_finished_seeds_become_mean_std_tables(tmp_path):
    study = STUDIES["demopose"]
    for i, v in enumerate(study.variants):
        for k in range(seed_count(v)):
            # the reference (demopose) at 3, 4, 5 %; fusion_add within its spread; fusion_mlp far above it
            value = {"demopose": 0.03 + 0.01 * k, "fusion_add": 0.035 + 0.02 * k,
                     "fusion_mlp": 0.5 + 0.01 * k}.get(v.name, 0.01 * (i + 1))
            _fake_metrics(tmp_path / v.name / f"seed{k}" / "test" / "metrics.json", value)
    doc = run_study("demopose", tmp_path / "data", tmp_path, steps=7, detector_steps=9)
    assert doc["schema"] == "demopose.ablation/2"
    assert set(doc["rows"]) == {v.name for v in study.variants}
    row = doc["rows"]["demopose"]
    assert row["steps"] == 7 and row["n_seeds"] == 3 and [s["seed"] for s in row["seeds"]] == [0, 1, 2]
    assert [s["nocs"]["iou75"] for s in row["seeds"]] == [3.0, 4.0, 5.0]
    assert row["mean"]["nocs"]["iou75"] == 4.0 and row["std"]["nocs"]["iou75"] == 1.0 and row["fps"] == 12.5
    assert doc["rows"]["mono"]["steps"] == 9 and doc["rows"]["mono"]["n_seeds"] == 2
    cmd = " ".join(row["seeds"][2]["train_command"])
    assert "train.seed=2" in cmd and "train.init_from=null" in cmd
    assert f"model.args.mono_checkpoint={tmp_path / 'mono' / 'seed0' / 'model_final.pt'}" in cmd
    md = (tmp_path / "results.md").read_text()
    t3 = md[md.index("### Table 3 — fusion strategies (all with MPL) — IoU mode `nocs`"):]
    t3 = t3[:t3.index("\n\n###")]
    lines = {ln.split(" | ")[0]: ln for ln in t3.splitlines() if ln.startswith("| ")}
    assert "| 4.0 ± 1.0 |" in lines["| **DeMo-Pose: concat + MPL**"]  # the reference, first and bold
    assert t3.splitlines()[4].startswith("| **DeMo-Pose")
    assert "4.5 ± 1.4 ≈" in lines["| fusion: add"]  # 3.5 and 5.5
    assert "50.5 ± 0.7 |" in lines["| fusion: MLP + skip"] and "≈" not in lines["| fusion: MLP + skip"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"]["gpv"]["label"].startswith("GPV-Pose") and saved["references"]["table1"] == "gpv"


def test_overrides_the_study_owns_are_refused(tmp_path):
    with pytest.raises(ValueError, match="from scratch"):
        run_study("cleanpose", tmp_path, tmp_path, 2, 2, extra=["train.init_from=x.pt"])
    with pytest.raises(ValueError, match="train.seed"):
        run_study("cleanpose", tmp_path, tmp_path, 2, 2, extra=["train.seed=3"])


def test_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path):
    lock = _claim(tmp_path / "v")
    assert lock is not None and lock.read_text() == str(os.getpid())
    assert _claim(tmp_path / "v") is None  # held by a live process (us)
    lock.write_text("999999999")  # a pid that does not exist
    assert _claim(tmp_path / "v") is not None


def test_real_study_runs_and_resumes_seed_by_seed(tiny_synth, tmp_path):
    """The AG-Pose row with BatchNorm MLPs trained for 2 steps: one seed, then a second added by rerunning with
    --seeds 2, without rerunning the first."""
    data = tiny_synth(4, 2)
    out = tmp_path / "study"
    extra = ["train.batch_size=2", "train.num_workers=0", "train.eval_every=0", "train.val_frames=1",
             "train.checkpoint_every=2", "data.n_points=96"]
    doc = run_study("cleanpose", data, out, steps=2, detector_steps=2, only=["agpose_bn"], extra=extra,
                    test_frames=1, threads=1, seeds=1)
    row = doc["rows"]["agpose_bn"]
    assert set(doc["rows"]) == {"agpose_bn"} and row["n_seeds"] == 1 and row["steps"] == 2
    assert all(set(s["nocs"]) == set(METRIC_KEYS) for s in row["seeds"])
    first = (out / "agpose_bn" / "seed0" / "test" / "metrics.json").stat().st_mtime_ns
    doc = run_study("cleanpose", data, out, steps=2, detector_steps=2, only=["agpose_bn"], extra=extra,
                    test_frames=1, threads=1, seeds=2)
    assert doc["rows"]["agpose_bn"]["n_seeds"] == 2
    config = (out / "agpose_bn" / "seed1" / "config.yaml").read_text()
    assert "mlp_layout: batchnorm" in config and "seed: 1" in config and "init_from: null" in config
    assert (out / "agpose_bn" / "seed0" / "test" / "metrics.json").stat().st_mtime_ns == first  # not rerun
    assert "± " in (out / "results.md").read_text()


def test_warm_started_study_is_recorded_and_never_mixed_with_scratch_rows(tmp_path):
    """--init-from: the pose rows' commands start from the given weights (the detector row is untouched), the
    results and the tables say so, and the folder refuses to take rows started otherwise."""
    out = tmp_path / "study"
    _fake_metrics(out / "gpv" / "seed0" / "test" / "metrics.json", 0.5)  # finished: nothing is run
    doc = run_study("demopose", tmp_path, out, 2, 2, only=["gpv"], seeds=1, init_from="w.pt",
                    detector_checkpoint="det.pt")
    assert doc["init_from"] == "w.pt"
    train_cmd = doc["rows"]["gpv"]["seeds"][0]["train_command"]
    assert "train.init_from=w.pt" in train_cmd and "train.init_from=null" not in train_cmd
    assert "warm-started from `w.pt`" in (out / "results.md").read_text()
    with pytest.raises(ValueError, match="init_from"):
        run_study("demopose", tmp_path, out, 2, 2, only=["gpv"], seeds=1, detector_checkpoint="det.pt")
