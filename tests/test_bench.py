import json

import pytest

from demopose.cli import main


def test_bench_writes_results(tmp_path, capsys):
    out = tmp_path / "lat.json"
    assert main(["bench", "--models", "gpv_small", "--devices", "cpu", "--threads", "1", "--points", "64",
                 "--repeats", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    (row,) = doc["results"]
    assert row["model"] == "gpv_small" and row["threads"] == 1 and row["n_points"] == 64
    assert 0 < row["ms_per_instance"] <= row["ms_per_frame"] * 5
    assert row["peak_rss_mb"] > 50 and row["parameters"] > 1e5
    assert doc["machine"]["cores"] >= 1
    assert doc["command"].startswith("demopose bench --models gpv_small --devices cpu --threads 1")
    assert "| gpv_small | cpu | 1 |" in capsys.readouterr().out


def test_bench_image_and_rgb_models(tmp_path):
    out = tmp_path / "lat.json"
    assert main(["bench", "--models", "mono_small,cleanpose_small", "--devices", "cpu", "--threads", "1",
                 "--points", "256", "--repeats", "1", "--out", str(out)]) == 0
    mono, clean = json.loads(out.read_text())["results"]
    assert mono["ms_per_instance"] is None and mono["ms_per_frame"] > 0 and mono["input_size"] == [320, 320]
    assert clean["ms_per_instance"] > 0 and clean["n_points"] == 256


def test_latency_of_a_model_reading_the_whole_frame():
    """DeMo-Pose reads its instances' points and the letterboxed frame (``image_size``): measured in process."""
    from demopose.benchmark.latency import measure_model

    row = measure_model("demopose_small", threads=1, n_points=128, instances_per_frame=2, warmup=0, repeats=1)
    assert row["ms_per_instance"] > 0 and row["ms_per_frame"] > 0 and "input_size" not in row


def test_bench_unknown_model(tmp_path, capsys):
    assert main(["bench", "--models", "nope", "--out", str(tmp_path / "x.json")]) == 1
    assert "unknown ['nope']" in capsys.readouterr().err


def test_latency_rounds_take_medians():
    from demopose.benchmark.latency import merge_latency_rounds

    def run(inst: float, frame: float, rss: float) -> dict:
        return {"model": "gpv", "ms_per_instance": inst, "cpu_ms_per_instance": 2 * inst, "ms_per_frame": frame,
                "cpu_ms_per_frame": 2 * frame, "peak_rss_mb": rss, "load_average": [1.0, 1.0, 1.0]}

    row = merge_latency_rounds([run(40, 200, 300), run(60, 180, 320), run(50, 220, 310)])
    assert row["ms_per_instance"] == 50 and row["ms_per_frame"] == 200 and row["cpu_ms_per_frame"] == 400
    assert row["peak_rss_mb"] == 320 and [r["ms_per_instance"] for r in row["rounds"]] == [40, 60, 50]
    one = run(40, 200, 300)
    assert merge_latency_rounds([one]) is one
    detector = dict(run(0, 30, 300), ms_per_instance=None, cpu_ms_per_instance=None)
    assert merge_latency_rounds([detector, detector])["ms_per_instance"] is None


def test_micro_benchmark_helpers():
    from pathlib import Path

    from demopose.benchmark.micro import interleaved_ms, micro_parser

    order = []
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    out = interleaved_ms(fns, threads=[1], rounds=2, runs=1)
    assert set(out) == {1} and set(out[1]) == {"a", "b"} and all(v >= 0 for v in out[1].values())
    # each round times every variant in turn (2 warm-up calls + 1 timed each): a a a b b b, twice
    assert order == (["a"] * 3 + ["b"] * 3) * 2
    args = micro_parser(None, Path("x.json")).parse_args(["--threads", "1,2", "--rounds", "3"])
    assert args.threads == [1, 2] and args.rounds == 3
    with pytest.raises(SystemExit):
        micro_parser(None, Path("x.json")).parse_args(["--threads", "0"])
