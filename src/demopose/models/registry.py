"""A tiny model registry: ``@register_model(name)`` on a builder, ``build_model(name, **kwargs)``, and the one way
a builder turns its keyword arguments into its config record (:func:`config_from_overrides`).

A builder may also declare how the builder arguments stored by older versions of the config schema map to
today's (``args_upgrades``, applied by :func:`demopose.engine.checkpoint.upgrade_config` when an old
checkpoint is loaded) and which argument names were renamed (``renamed_args``, named in the error of an
override that uses the old name).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

__all__ = ["ArgsUpgrade", "args_upgrade", "build_model", "config_from_overrides", "list_models", "pretrained_args",
           "register_model", "renamed_arg"]

_log = logging.getLogger(__name__)
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_PRETRAINED: dict[str, tuple[str, ...]] = {}
ArgsUpgrade = Callable[[Mapping[str, Any]], dict[str, Any]]
"""Maps the builder arguments stored under config version ``v`` to those of version ``v + 1``."""
_UPGRADES: dict[str, dict[int, ArgsUpgrade]] = {}
_RENAMED: dict[str, dict[str, str]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])
C = TypeVar("C")


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


def config_from_overrides(base: C, overrides: Mapping[str, Any] | None, where: str | None = None) -> C:
    """``base`` (a dataclass instance: a builder's preset) with the fields given in ``overrides`` replaced, the
    one behaviour of every builder's keyword arguments (YAML ``model.args``, a checkpoint's stored args):

    - a key that is not a field of ``base`` is refused (``ValueError`` naming the config class and its fields);
    - a field holding a dataclass (nested options: ``causal``, ``distill``, ``loss``) takes a mapping merged over
      the preset's value, field by field and recursively (``None``: the preset's value; an instance replaces it;
      ``true`` / ``false`` is refused, naming ``<field>.enabled`` when the options have one);
    - a field holding a mapping (another builder's arguments: ``pose_args``) takes a mapping merged over the
      preset's (recursively; ``None``: the preset's);
    - lists become tuples, at every depth, where the field is a tuple (YAML has no tuples);
    - paths (``os.PathLike``) become strings.

    Args:
        base: the preset.
        overrides: field name -> value (None: ``base``; an instance of ``base``'s class: itself).
        where: names the record in error messages (default: the class name; nested records: the field's path).

    Raises:
        ValueError: unknown keys, or a nested field given something other than a mapping / an instance.
    """
    cls = type(base)
    if not dataclasses.is_dataclass(base) or isinstance(base, type):
        raise TypeError(f"config_from_overrides: expected a dataclass instance, got {cls.__name__}")
    where = where or cls.__name__
    if overrides is None or isinstance(overrides, cls):
        return base if overrides is None else overrides
    if isinstance(overrides, bool) and "enabled" in {f.name for f in dataclasses.fields(base)}:
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {overrides!r}; to switch "
                         f"the module on or off write {where}.enabled={str(overrides).lower()}")
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {overrides!r}")
    fields = {f.name: f for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}; {cls.__name__} expects some of {sorted(fields)}")
    changes = {}
    for name, value in overrides.items():
        current = getattr(base, name)
        sub = f"{where}.{name}" if where != cls.__name__ else name
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            changes[name] = config_from_overrides(current, value, sub)
        elif isinstance(current, Mapping):
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"{sub}: expected a mapping, got {value!r}")
            changes[name] = _merged(current, value or {})
        else:
            changes[name] = _plain(value, _is_tuple_field(fields[name], current))
    return dataclasses.replace(base, **changes)


def _merged(current: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` merged over ``current``, recursively where both hold a mapping."""
    out = dict(current)
    for k, v in value.items():
        out[k] = _merged(out[k], v) if isinstance(out.get(k), Mapping) and isinstance(v, Mapping) else v
    return out


def _is_tuple_field(field: dataclasses.Field, current: Any) -> bool:
    """Whether a field holds a tuple: its preset value is one, or its annotation says so."""
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    return isinstance(current, tuple) or kind.startswith(("tuple", "Tuple")) or " tuple" in kind


def _plain(value: Any, as_tuple: bool) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if as_tuple and isinstance(value, (list, tuple)):
        return tuple(_plain(v, True) for v in value)
    return value
