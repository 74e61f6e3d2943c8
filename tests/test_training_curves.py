"""`demopose curves`: metrics.jsonl files merged by step and drawn into a PNG."""

import json

import pytest

from demopose.cli import main
from demopose.evaluation.training_curves import read_metrics_jsonl


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_merge_by_step_later_file_wins(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"step": 10, "loss/total": 5.0}, {"step": 20, "loss/total": 4.0,
                                                                       "val/nocs/mean/iou50": 0.2}])
    b = _write(tmp_path / "b.jsonl", [{"step": 20, "loss/total": 3.5}, {"step": 30, "loss/total": 3.0}])
    recs = read_metrics_jsonl([a, b])
    assert [r["step"] for r in recs] == [10, 20, 30]
    assert recs[1] == {"step": 20, "loss/total": 3.5, "val/nocs/mean/iou50": 0.2}


def test_curves_command_writes_png_and_rejects_bad_input(tmp_path, capsys):
    recs = [{"step": s, "loss/total": 10.0 / s} for s in range(1, 40)]
    recs += [{"step": 20, "val/nocs/mean/10deg5cm": 0.3}, {"step": 39, "val/nocs/mean/10deg5cm": 0.5}]
    f = _write(tmp_path / "metrics.jsonl", recs)
    out = tmp_path / "c.png"
    assert main(["curves", str(f), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        read_metrics_jsonl(bad)
    assert main(["curves", str(bad), "--out", str(out)]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().err
