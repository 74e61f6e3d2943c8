"""A tiny model registry: ``@register_model(name)`` on a builder, ``build_model(name, **kwargs)``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from torch import nn

__all__ = ["build_model", "list_models", "pretrained_args", "register_model"]

_log = logging.getLogger(__name__)
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_PRETRAINED: dict[str, tuple[str, ...]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str, pretrained_args: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorator registering a builder ``fn(**kwargs) -> nn.Module`` under ``name``.

    ``pretrained_args``: builder arguments naming weight files loaded at construction (e.g. a frozen
    sub-network's checkpoint); :func:`demopose.engine.checkpoint.load_model` drops them, since a trained
    model's checkpoint holds those weights already.
    """

    def deco(fn: F) -> F:
        _PRETRAINED[name] = tuple(pretrained_args)
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            _log.warning("model %r registered twice; the later builder %s wins", name, fn.__qualname__)
        _REGISTRY[name] = fn
        return fn

    return deco


def pretrained_args(name: str) -> tuple[str, ...]:
    """The ``pretrained_args`` ``name`` was registered with."""
    return _PRETRAINED.get(name, ())


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; ``kwargs`` go to its builder.

    Raises:
        KeyError: unknown ``name`` (the message lists the registered names).
    """
    try:
        fn = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {list_models()}") from None
    return fn(**kwargs)
