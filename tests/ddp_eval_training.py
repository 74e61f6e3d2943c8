"""Run ``demopose train`` under torchrun (the test in test_ddp_training.py), recording on every rank the
evaluation results it recorded and its best-checkpoint decisions: ``RUN_DIR/decisions_rank<r>.json``."""

import json
import os
import sys

from demopose.cli import main
from demopose.engine import hooks

_run = hooks.EvalHook._run
_log: list = []


def _recording_run(self) -> None:
    saved = []
    save = self.trainer.save_checkpoint
    self.trainer.save_checkpoint = lambda name="last.pt": saved.append(name) or save(name)
    try:
        _run(self)
    finally:
        del self.trainer.save_checkpoint
    t = self.trainer
    _log.append({"step": t.step, "best": self.best, "saved": saved,
                 "val": {k: v for k, v in t.records.items() if k.startswith("val/")}})


if __name__ == "__main__":
    hooks.EvalHook._run = _recording_run
    rank_dir = sys.argv[sys.argv.index("--out") + 1]
    code = main(sys.argv[1:])
    from pathlib import Path

    Path(rank_dir, f"decisions_rank{os.environ['RANK']}.json").write_text(json.dumps(_log))
    sys.exit(code)
