"""A tiny model registry: ``@register_model(name)`` on a builder, ``build_model(name, **kwargs)``.

A builder may also declare how the builder arguments stored by older versions of the config schema map to
today's (``args_upgrades``, applied by :func:`demopose.engine.checkpoint.upgrade_config` when an old
checkpoint is loaded) and which argument names were renamed (``renamed_args``, named in the error of an
override that uses the old name).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

__all__ = ["ArgsUpgrade", "args_upgrade", "build_model", "list_models", "pretrained_args", "register_model",
           "renamed_arg"]

_log = logging.getLogger(__name__)
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_PRETRAINED: dict[str, tuple[str, ...]] = {}
ArgsUpgrade = Callable[[Mapping[str, Any]], dict[str, Any]]
"""Maps the builder arguments stored under config version ``v`` to those of version ``v + 1``."""
_UPGRADES: dict[str, dict[int, ArgsUpgrade]] = {}
_RENAMED: dict[str, dict[str, str]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str, pretrained_args: tuple[str, ...] = (),
                   args_upgrades: Mapping[int, ArgsUpgrade] | None = None,
                   renamed_args: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Decorator registering a builder ``fn(**kwargs) -> nn.Module`` under ``name``.

    Args:
        pretrained_args: builder arguments naming weight files loaded at construction (e.g. a frozen
            sub-network's checkpoint; dotted for a nested option, ``causal.dict_init``);
            :func:`demopose.engine.checkpoint.load_model` drops them, since a trained model's checkpoint
            holds those weights already.
        args_upgrades: ``{v: fn}``: ``fn`` turns the builder arguments a checkpoint of config version ``v``
            stored into those of version ``v + 1``.
        renamed_args: ``{old dotted name: new dotted name}`` of arguments that moved.
    """

    def deco(fn: F) -> F:
        _PRETRAINED[name] = tuple(pretrained_args)
        _UPGRADES[name] = dict(args_upgrades or {})
        _RENAMED[name] = dict(renamed_args or {})
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            _log.warning("model %r registered twice; the later builder %s wins", name, fn.__qualname__)
        _REGISTRY[name] = fn
        return fn

    return deco


def pretrained_args(name: str) -> tuple[str, ...]:
    """The ``pretrained_args`` ``name`` was registered with."""
    return _PRETRAINED.get(name, ())


def args_upgrade(name: str, version: int) -> ArgsUpgrade | None:
    """The function turning ``name``'s builder arguments of config version ``version`` into those of
    ``version + 1`` (None: unchanged between the two)."""
    return _UPGRADES.get(name, {}).get(int(version))


def renamed_arg(name: str, arg: str) -> str | None:
    """The current name of ``name``'s builder argument ``arg`` (dotted) when it was renamed, else None."""
    return _RENAMED.get(name, {}).get(arg)


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
