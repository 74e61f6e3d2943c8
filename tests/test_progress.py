"""Training progress with the time left: log lines with an ETA where stderr is not a terminal."""

import logging
import sys
from pathlib import Path

from demopose.engine import default_hooks
from demopose.engine.hooks import ProgressHook, format_duration

sys.path.insert(0, str(Path(__file__).parent))
from toy_training import build  # noqa: E402


def test_progress_lines_with_eta(tmp_path, caplog):
    hooks = default_hooks(checkpoint_every=0, log_every=5, progress=False)
    hooks[-1] = ProgressHook(True, log_every_percent=25)
    with caplog.at_level(logging.INFO, logger="demopose.engine.hooks"):
        build(tmp_path, max_steps=8, hooks=hooks).train()  # pytest's stderr is not a terminal
    lines = [r.getMessage() for r in caplog.records if "ETA" in r.getMessage()]
    assert [m.split()[1] for m in lines] == ["2/8", "4/8", "6/8", "8/8"]
    assert "step/s" in lines[0] and lines[-1].split("ETA ")[1].startswith("0s")


def test_format_duration():
    assert format_duration(42.4) == "42s" and format_duration(185) == "3m05s" and format_duration(3720) == "1h02m"
