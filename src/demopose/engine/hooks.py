"""Trainer hooks (detectron2's ``HookBase`` idea): the loop stays small, everything else is a hook.

Order matters and is the order of the list given to the trainer; :func:`default_hooks` returns
checkpointing before evaluation (a failed evaluation still leaves a checkpoint) and writers last.
``before_step`` must be cheap. Each hook holds a weak reference to the trainer.
"""

from __future__ import annotations

import json
import logging
import math
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demopose.engine import dist
from demopose.engine.checkpoint import capture_rng_state, restore_rng_state, strip_checkpoint

if TYPE_CHECKING:
    from demopose.engine.trainer import Trainer

__all__ = ["CheckpointHook", "EvalHook", "HookBase", "JSONLWriter", "ProgressHook", "TensorBoardWriter",
           "default_hooks"]

log = logging.getLogger(__name__)


class HookBase:
    """Base class: override any of the five callbacks; ``state_dict`` is saved in checkpoints."""

    _trainer_ref: Callable[[], Trainer | None] | None = None

    @property
    def trainer(self) -> Trainer:
        t = self._trainer_ref() if self._trainer_ref else None
        if t is None:
            raise RuntimeError("hook is not attached to a live trainer")
        return t

    def attach(self, trainer: Trainer) -> None:
        self._trainer_ref = weakref.ref(trainer)

    def before_train(self) -> None: ...
    def before_step(self) -> None: ...
    def after_step(self) -> None: ...
    def after_train(self) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class CheckpointHook(HookBase):
    """Write ``last.pt`` every ``every`` steps and at the end (rank 0 only), atomically; at the end also the
    weights-only ``model_final.pt``."""

    def __init__(self, every: int) -> None:
        self.every = every

    def after_step(self) -> None:
        t = self.trainer
        if self.every and t.step % self.every == 0 and t.step < t.max_steps:
            t.save_checkpoint()

    def after_train(self) -> None:
        t = self.trainer
        if t.step >= t.max_steps:
            t.save_checkpoint()
            if dist.is_main():  # the weights-only file that is shipped / loaded for inference
                strip_checkpoint(t.run_dir / "last.pt", t.run_dir / "model_final.pt")


class EvalHook(HookBase):
    """Run ``fn(trainer) -> dict[str, float]`` every ``every`` steps and at the last step; results are logged.

    Enable it on all ranks or none: ``fn`` runs on every rank (it may gather across ranks, e.g. with
    :func:`~demopose.engine.dist.gather_evaluator`); the results of rank 0 are then broadcast, so that every
    rank records the same values and takes the same best-checkpoint decision (saving ``best.pt`` is a
    collective). Non-finite values are kept (and written) but never chosen as the best.
    """

    def __init__(self, fn: Callable[[Trainer], dict[str, float]], every: int, key: str | None = None,
                 mode: str = "max") -> None:
        self.fn, self.every, self.key, self.mode = fn, every, key, mode
        self.best: float | None = None

    def _run(self) -> None:
        t = self.trainer
        rng = capture_rng_state()  # evaluation must not shift the training RNG stream (exact resume)
        try:
            results = self.fn(t) or {}
        finally:
            restore_rng_state(rng)
        try:
            results = {k: float(v) for k, v in results.items()}
        except (TypeError, ValueError) as e:
            raise ValueError(f"EvalHook: the evaluation function must return a flat dict of floats: {e}") from e
        results = dist.broadcast_object(results)  # rank 0's values: one decision on every rank
        t.record({f"val/{k}": v for k, v in results.items()})
        if self.key and self.key in results and math.isfinite(results[self.key]):
            v = results[self.key]
            better = self.best is None or (v > self.best if self.mode == "max" else v < self.best)
            if better:
                self.best = v
                t.save_checkpoint("best.pt")
        dist.barrier()

    def after_step(self) -> None:
        # the last step always evaluates, inside the step, so the writers log it with that step
        t = self.trainer
        if (self.every and t.step % self.every == 0) or t.step >= t.max_steps:
            self._run()

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")


class JSONLWriter(HookBase):
    """Append the records of each step to ``run_dir/metrics.jsonl`` (rank 0). Lines past the resumed step
    are dropped on resume, so the file always describes one consistent run."""

    def __init__(self, every: int = 20) -> None:
        self.every = every

    @property
    def path(self) -> Path:
        return self.trainer.run_dir / "metrics.jsonl"

    def before_train(self) -> None:
        if not dist.is_main() or not self.path.exists():
            return
        keep = [line for line in read_metrics_lines(self.path) if json.loads(line).get("step", 0) <= self.trainer.step]
        self.path.write_text("".join(k + "\n" for k in keep))

    def after_step(self) -> None:
        t = self.trainer
        if not dist.is_main():
            return
        if t.step % self.every == 0 or t.step >= t.max_steps or any(k.startswith("val/") for k in t.records):
            with self.path.open("a") as f:
                f.write(json.dumps({"step": t.step, **t.records}) + "\n")


def read_metrics_lines(path: Path) -> list[str]:
    """The JSON lines of a ``metrics.jsonl``; a torn last line (what a crash or a full disk leaves) is dropped
    with a warning naming the file. Raises ValueError naming the file and line for a damaged line elsewhere."""
    lines = [(n, line) for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
             if line.strip()]
    out = []
    for i, (n, line) in enumerate(lines):
        try:
            if not isinstance(json.loads(line), dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if i == len(lines) - 1:
                log.warning("%s:%d: dropping a torn last line (an interrupted write): %.60r", path, n, line)
                break
            raise ValueError(f"{path}:{n}: not a JSON metrics record ({e}); fix or delete the line to resume") from None
        out.append(line)
    return out


class TensorBoardWriter(HookBase):
    """Scalars to TensorBoard under ``run_dir/tb`` (rank 0; needs ``tensorboard``: the ``logging`` or ``dev``
    extra), at the steps the JSONL log has: every ``every`` steps and at every evaluation."""

    def __init__(self, every: int = 20) -> None:
        self.every = every
        self._writer: Any = None

    def before_train(self) -> None:
        if not dist.is_main():
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("tensorboard is not installed (pip install 'demopose[logging]'); TensorBoard logs off")
            return
        self._writer = SummaryWriter(str(self.trainer.run_dir / "tb"), purge_step=self.trainer.step)

    def after_step(self) -> None:
        t = self.trainer
        if self._writer is None:
            return
        if t.step % self.every == 0 or any(k.startswith("val/") for k in t.records):
            for k, v in t.records.items():
                self._writer.add_scalar(k, v, t.step)

    def after_train(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ProgressHook(HookBase):
    """Progress over steps (rank 0) with the time left: a tqdm bar on a terminal (elapsed<remaining, step rate,
    total loss and learning rate), and where stderr is not a terminal (a log file, a batch job) one log line every
    ``log_every_percent`` of the run (step, rate, elapsed, ETA) instead of a bar redrawn with carriage returns.
    The rate is averaged over the run so far (evaluation included), so the ETA does not jump after each
    evaluation."""

    def __init__(self, enabled: bool = True, log_every_percent: float = 5.0) -> None:
        self.enabled = enabled
        self.log_every_percent = log_every_percent
        self._bar: Any = None
        self._lines = False
        self._t0 = 0.0
        self._start = 0
        self._next = 0

    def before_train(self) -> None:
        if not (self.enabled and dist.is_main()):
            return
        import sys
        import time

        t = self.trainer
        self._t0, self._start = time.perf_counter(), t.step
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=t.max_steps, initial=t.step, desc="train", unit="step", dynamic_ncols=True,
                             smoothing=0.0)
        else:
            self._lines = True
            self._next = t.step + self._stride()

    def _stride(self) -> int:
        return max(1, round(self.trainer.max_steps * self.log_every_percent / 100))

    def after_step(self) -> None:
        r = self.trainer.records
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{r.get('loss/total', float('nan')):.4g}", lr=f"{r.get('lr', 0):.2e}")
            self._bar.update(1)
        elif self._lines:
            t = self.trainer
            if t.step >= self._next or t.step >= t.max_steps:
                import time

                self._next = t.step + self._stride()
                elapsed = time.perf_counter() - self._t0
                rate = (t.step - self._start) / max(elapsed, 1e-9)
                eta = (t.max_steps - t.step) / max(rate, 1e-9)
                log.info("step %d/%d (%.0f%%), %.2f step/s, elapsed %s, ETA %s, loss %.4g", t.step, t.max_steps,
                            100 * t.step / max(t.max_steps, 1), rate, format_duration(elapsed), format_duration(eta),
                            r.get("loss/total", float("nan")))

    def after_train(self) -> None:
        if self._bar is not None:
            self._bar.close()


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def default_hooks(checkpoint_every: int, log_every: int, eval_fn: Callable[[Trainer], dict[str, float]] | None = None,
                  eval_every: int = 0, best_key: str | None = None, progress: bool = True) -> list[HookBase]:
    """Checkpoint, then evaluation, then writers (JSONL, TensorBoard), then the progress bar."""
    hooks: list[HookBase] = [CheckpointHook(checkpoint_every)]
    if eval_fn is not None:
        hooks.append(EvalHook(eval_fn, eval_every, key=best_key))
    hooks += [JSONLWriter(log_every), TensorBoardWriter(log_every), ProgressHook(progress)]
    return hooks
