import json

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


def test_bench_unknown_model(tmp_path, capsys):
    assert main(["bench", "--models", "nope", "--out", str(tmp_path / "x.json")]) == 1
    assert "unknown ['nope']" in capsys.readouterr().err
