"""Optimisers and learning-rate schedules used by the presets.

- ``ranger``: RAdam + Lookahead (α = 0.5, k = 6) + gradient centralisation, as GPV-Pose / HS-Pose train
  (notes/depth_and_eval.md §1.11; Wright 2019, Zhang et al. "Lookahead Optimizer", NeurIPS 2019; Yong et
  al. "Gradient Centralization", ECCV 2020).
- ``adam``, ``adamw``, ``sgd``.
- Schedules as functions of the step: ``flat_and_anneal`` (linear warm-up from ``warmup_factor``·lr,
  flat, cosine to 0 from ``anneal_point`` of the run; GPV-Pose), ``cosine``, ``cyclic`` (triangular,
  per-iteration; CleanPose), ``constant``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["Lookahead", "build_optimizer", "build_scheduler", "lr_factor_fn"]


class Lookahead(torch.optim.Optimizer):
    """Lookahead wrapper: every ``k`` inner steps, slow weights move ``alpha`` of the way to the fast ones."""

    def __init__(self, inner: torch.optim.Optimizer, k: int = 6, alpha: float = 0.5) -> None:
        self.inner, self.k, self.alpha = inner, k, alpha
        self.param_groups = inner.param_groups
        self.defaults = inner.defaults
        self.state = inner.state
        self._steps = 0
        self._slow: list[list[torch.Tensor]] | None = None  # taken at the first step, not at construction:
        # weights loaded after the optimiser was built (warm start) must not be pulled back to the init

    def _slow_weights(self) -> list[list[torch.Tensor]]:
        if self._slow is None:
            self._slow = [[p.detach().clone() for p in g["params"]] for g in self.param_groups]
        return self._slow

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        slow_weights = self._slow_weights()  # taken before the first update
        loss = self.inner.step(closure)
        self._steps += 1
        if self._steps % self.k == 0:
            for group, slows in zip(self.param_groups, slow_weights):
                for p, slow in zip(group["params"], slows):
                    slow.add_(p.detach() - slow, alpha=self.alpha)
                    p.copy_(slow)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "steps": self._steps, "slow": self._slow_weights()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.param_groups = self.inner.param_groups
        self.state = self.inner.state
        self._steps = int(state["steps"])
        self._slow = [[s.to(p.device) for s, p in zip(ss, g["params"])]
                      for ss, g in zip(state["slow"], self.param_groups)]


def _centralize_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    # Gradient centralisation: remove the mean over all but the output dimension (conv / linear weights).
    for p in params:
        if p.grad is not None and p.grad.dim() > 1:
            p.grad.sub_(p.grad.mean(dim=tuple(range(1, p.grad.dim())), keepdim=True))


class _RAdamGC(torch.optim.RAdam):
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        for g in self.param_groups:
            _centralize_gradients(g["params"])
        return super().step(closure)


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0,
                    **kwargs: Any) -> torch.optim.Optimizer:
    """Create an optimiser by name: ``ranger`` | ``adam`` | ``adamw`` | ``sgd``."""
    params = [p for p in params if p.requires_grad]
    name = name.lower()
    if name == "ranger":
        inner = _RAdamGC(params, lr=lr, betas=tuple(kwargs.get("betas", (0.95, 0.999))),
                         eps=kwargs.get("eps", 1e-5), weight_decay=weight_decay)
        return Lookahead(inner, k=int(kwargs.get("k", 6)), alpha=float(kwargs.get("alpha", 0.5)))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=kwargs.get("momentum", 0.9), weight_decay=weight_decay)
    raise ValueError(f"optimizer.name: unknown optimiser {name!r}; choose ranger, adam, adamw or sgd")


def lr_factor_fn(name: str, total_steps: int, warmup_steps: int = 0, warmup_factor: float = 0.001,
                 anneal_point: float = 0.72, cycle_steps: int = 0, min_factor: float = 0.0,
                 max_factor: float = 1.0) -> Callable[[int], float]:
    """Learning-rate multiplier as a function of the (0-based) step.

    ``cyclic`` rises linearly from ``min_factor`` to ``max_factor`` over ``cycle_steps`` and falls back over
    the next ``cycle_steps`` (triangular CyclicLR, stepped per iteration).
    """
    name = name.lower()

    def warm(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            a = step / warmup_steps
            return warmup_factor * (1 - a) + a
        return 1.0

    if name == "constant":
        return lambda s: warm(s)
    if name == "flat_and_anneal":
        start = int(anneal_point * total_steps)

        def f(s: int) -> float:
            if s < start:
                return warm(s)
            frac = (s - start) / max(1, total_steps - start)
            return warm(s) * (min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

        return f
    if name == "cosine":
        return lambda s: warm(s) * (min_factor + (1 - min_factor) * 0.5 *
                                    (1 + math.cos(math.pi * min(s / max(1, total_steps), 1.0))))
    if name == "cyclic":
        if cycle_steps <= 0:
            raise ValueError("scheduler.cycle_steps must be > 0 for the cyclic schedule")

        def c(s: int) -> float:
            pos = (s % (2 * cycle_steps)) / cycle_steps
            tri = pos if pos <= 1 else 2 - pos
            return min_factor + (max_factor - min_factor) * tri

        return c
    raise ValueError(f"scheduler.name: unknown schedule {name!r}; choose constant, flat_and_anneal, cosine, cyclic")


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, total_steps: int,
                    **kwargs: Any) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR`` with :func:`lr_factor_fn`'s multiplier."""
    target = getattr(optimizer, "inner", optimizer)
    return torch.optim.lr_scheduler.LambdaLR(target, lr_factor_fn(name, total_steps, **kwargs))
