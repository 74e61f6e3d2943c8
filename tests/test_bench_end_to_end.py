"""End-to-end benchmark: JSON structure, stage times that add up, skipped backends, the CLI command."""

import json
import sys

import pytest

from demopose.benchmark.end_to_end import STAGES, format_table, merge_rounds, run_end_to_end

TINY = {"mono_args": {"input_size": [64, 64]}, "mesh_points": 16}


@pytest.fixture(scope="module")
def doc(tmp_path_factory, monkeypatch_module):
    # no demopose.export in this run: the ORT backend must be recorded as skipped, with the reason
    monkeypatch_module.setitem(sys.modules, "demopose.export", None)
    out = tmp_path_factory.mktemp("e2e") / "e2e.json"
    return run_end_to_end(model="demopose_small", model_args=TINY, backends=("torch", "ort"), frames=2, warmup=1,
                          threads=1, width=160, height=120, objects=3, out=out, command="test command",
                          data_dir=tmp_path_factory.mktemp("frames"), progress=False), out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_document_structure(doc):
    d, out = doc
    assert json.loads(out.read_text()) == d
    assert d["benchmark"] == "end-to-end" and d["command"] == "test command"
    assert d["threads"] == 1 and d["device"] == "cpu" and d["weights"] == "untrained"
    assert d["instances"] == "gt-boxes" and d["frame_size"] == [160, 120]
    assert {"cpu", "cores", "torch"} <= set(d["machine"])
    assert len(d["load_average"]["start"]) == 3
    assert d["stages"] == list(STAGES)
    torch_row, ort_row = d["results"]
    assert torch_row["backend"] == "torch" and torch_row["status"] == "ok"
    assert set(torch_row["stages_ms"]) == set(STAGES)
    assert all(v >= 0 for v in torch_row["stages_ms"].values())
    assert torch_row["peak_rss_mb"] > 50
    assert torch_row["fps"] == pytest.approx(1000 / torch_row["end_to_end_ms"], rel=1e-3)
    # ground-truth boxes: one instance per visible object (each has plenty of depth points)
    assert 0 < torch_row["instances_per_frame"] <= 3
    assert ort_row == {"backend": "ort", "status": "skipped", "reason": ort_row["reason"]}
    assert "not importable" in ort_row["reason"]
    table = format_table(d)
    assert "| torch |" in table and "| ort | skipped: demopose.export / onnxruntime not importable" in table
    for t in (table, format_table(d, "cpu")):  # every row has the header's number of cells
        rows = [line for line in t.splitlines() if line.startswith("|")]
        assert len({line.count("|") for line in rows}) == 1


def test_stages_add_up_to_end_to_end(doc):
    r = doc[0]["results"][0]
    total = sum(r["stages_ms"].values())
    # every frame's stages tile its end-to-end time; medians of two frames are their means, so they add up
    assert total == pytest.approx(r["end_to_end_ms"], rel=0.05)
    assert sum(r["stages_mean_ms"].values()) == pytest.approx(r["end_to_end_mean_ms"], rel=1e-3)
    assert sum(r["cpu_stages_ms"].values()) == pytest.approx(r["cpu_end_to_end_ms"], rel=0.05)
    assert 0 < r["cpu_end_to_end_ms"] <= r["end_to_end_ms"] * 1.5  # one thread: CPU time <= wall time (+ slack)
    assert r["stages_ms"]["network"] > 0 and r["stages_ms"]["detection"] > 0


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="backends"):
        run_end_to_end(backends=("tensorrt",))
    with pytest.raises(ValueError, match="instances"):
        run_end_to_end(backends=("torch",), instances="oracle")
    with pytest.raises(ValueError, match="rounds"):
        run_end_to_end(backends=("torch",), rounds=0)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        run_end_to_end(checkpoint=tmp_path / "missing.pt")


def test_cli_end_to_end(tmp_path, capsys):
    from demopose.cli import main

    out = tmp_path / "e2e.json"
    assert main(["bench", "--end-to-end", "--backends", "torch", "--frames", "1", "--warmup", "0", "--threads", "1",
                 "--data-dir", str(tmp_path / "frames"), "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["frame_size"] == [640, 480] and d["model"] == "demopose_small" and d["instances"] == "gt-boxes"
    assert d["command"] == ("demopose bench --end-to-end --model demopose_small --backends torch --frames 1 "
                            f"--warmup 0 --threads 1 --device cpu --instances auto --data-dir {tmp_path / 'frames'} "
                            f"--out {out}")
    assert d["results"][0]["status"] == "ok"
    assert "| torch |" in capsys.readouterr().out


def _round(e2e: float, net: float, rss: float, inst: float) -> dict:
    stages = {s: 1.0 for s in STAGES} | {"network": net}
    return {"backend": "torch", "status": "ok", "stages_ms": stages, "stages_mean_ms": stages,
            "cpu_stages_ms": stages, "end_to_end_ms": e2e, "end_to_end_mean_ms": e2e, "fps": 1000 / e2e,
            "cpu_end_to_end_ms": 2 * e2e, "instances_per_frame": inst, "detections_per_frame": inst,
            "peak_rss_mb": rss}


def test_merge_rounds_takes_medians():
    row = merge_rounds([_round(100, 50, 400, 4), _round(300, 70, 420, 5), _round(200, 60, 410, 6)])
    assert row["end_to_end_ms"] == 200 and row["fps"] == pytest.approx(5.0)
    assert row["stages_ms"]["network"] == 60 and row["cpu_end_to_end_ms"] == 400
    assert row["instances_per_frame"] == pytest.approx(5.0) and row["peak_rss_mb"] == 420
    assert [r["end_to_end_ms"] for r in row["rounds"]] == [100, 300, 200]
    skipped = {"backend": "ort", "status": "skipped", "reason": "failed: x"}
    assert merge_rounds([_round(100, 50, 400, 4), skipped]) == skipped
    one = _round(100, 50, 400, 4)
    assert merge_rounds([one]) is one
