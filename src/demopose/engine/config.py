"""YAML configs with inheritance and dotted command-line overrides (OmegaConf underneath).

A config file may name one or more parents with ``_base_`` (a path relative to the file, or the name of
a packaged config); parents are merged first, in order, and the child overrides them. Overrides are
``key.sub=value`` strings applied last. An override of a key that does not exist, or with a value of a
different type than the existing one (int -> float is allowed), is an error that names the key — typos
never pass silently. The same holds inside a child file: each of its keys must exist in its parents, be one
of the optional keys the engine reads with a default (:data:`OPTIONAL_KEYS`), or lie under a group whose
consumer checks its own keys (:data:`OPEN_GROUPS`: ``model.args`` is checked by the model's builder); anything
else is an error naming the file and the key. A file without ``_base_`` defines its keys.

Packaged configs live in ``demopose/configs/*.yaml`` and are found by name; they name the
weights shipped in the package as ``${asset:NAME}`` (:mod:`demopose.assets`), so they work from any folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from demopose.assets import asset_path
from demopose.io import write_text_atomic

__all__ = ["OPEN_GROUPS", "OPTIONAL_KEYS", "PACKAGED_CONFIGS", "REMOVED_KEYS", "apply_overrides",
           "list_packaged_configs", "load_config", "resolve_config_path", "save_config"]

PACKAGED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"

OPTIONAL_KEYS = frozenset({
    "data.format", "data.depth", "data.sample", "data.augment", "data.cache_instances", "data.mesh_cache",
    "data.rgb_size", "train.grad_clip", "train.sync_bn", "train.precision", "train.val_frames", "train.init_from",
    "train.start_step", "train.precise_bn", "train.precise_bn_batches", "eval.masks", "data.test_subset",
})
"""Keys the engine reads with a default when a config leaves them out (:mod:`demopose.engine.build`, the train and
test commands): a child config file may add them although its parents do not set them."""

OPEN_GROUPS = frozenset({"model.args", "data.augment", "train.optimizer", "train.scheduler"})
"""Groups whose keys are checked by what reads them (the model's builder, the augmentation records, the optimiser
and schedule builders): a child config file may add keys under them."""

REMOVED_KEYS = {
    "data.input_size": "the data pipeline reads the model's input size (the detector's image_size): set "
                       "model.args.input_size only",
}
"""Keys that no longer exist, with what to do instead (named in the error of a config or an override that sets
them)."""

# ``${asset:NAME}`` in a config: the path of a weight file shipped in the package (demopose.assets).
# register_new_resolver works on OmegaConf 2.3 and 2.4 (2.4 renames it register_resolver and warns).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    OmegaConf.register_new_resolver("asset", lambda name: str(asset_path(str(name))), replace=True)


def list_packaged_configs() -> list[str]:
    """Names of the configs shipped with the package (without ``.yaml``)."""
    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))


def resolve_config_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """Find a config: an existing path (absolute, or relative to ``relative_to`` / the cwd), else a packaged
    config name. Raises ``FileNotFoundError`` listing the packaged names."""
    p = Path(name_or_path)
    candidates = [p] if p.is_absolute() else ([relative_to / p] if relative_to else []) + [p]
    candidates.append(PACKAGED_CONFIGS / (p.name if p.suffix == ".yaml" else f"{p.name}.yaml"))
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise FileNotFoundError(f"config {str(name_or_path)!r} not found (as a path, or among the packaged configs: "
                            f"{', '.join(list_packaged_configs()) or 'none'})")


def _load_tree(path: Path, stack: tuple[Path, ...] = ()) -> DictConfig:
    if path in stack:
        raise ValueError(f"{path}: _base_ cycle: {' -> '.join(str(s) for s in stack + (path,))}")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml errors carry line numbers; keep them
        raise ValueError(f"{path}: not a valid YAML config: {e}") from e
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{path}: the top level of a config must be a mapping")
    bases = cfg.pop("_base_", None)
    if bases is None:
        return cfg
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged = OmegaConf.create()
    for b in bases:
        merged = OmegaConf.merge(merged, _load_tree(resolve_config_path(b, path.parent), stack + (path,)))
    _check_known_keys(cfg, merged, path, bases)
    return OmegaConf.merge(merged, cfg)


def _check_known_keys(child: DictConfig, base: DictConfig, path: Path, bases: list, prefix: str = "") -> None:
    """Every key of a child config file exists in its merged parents, is optional or lies in an open group."""
    for key in child.keys():  # noqa: SIM118 (keys() also lists MISSING values)
        dotted = f"{prefix}{key}"
        if dotted in OPEN_GROUPS:
            continue
        known = isinstance(base, DictConfig) and key in base.keys()  # noqa: SIM118
        if not known and dotted not in OPTIONAL_KEYS:
            hint = REMOVED_KEYS.get(dotted)
            siblings = sorted(map(str, base.keys())) if isinstance(base, DictConfig) else []
            raise ValueError(f"{path}: unknown config key {dotted!r}" + (f" (removed: {hint})" if hint else "") +
                             f": not in its _base_ {', '.join(map(str, bases))}" +
                             (f"; keys under {prefix[:-1] or 'the top level'}: {', '.join(siblings)}"
                              if siblings else ""))
        value, parent = child._get_node(key), base._get_node(key) if known else None
        if isinstance(value, DictConfig) and isinstance(parent, DictConfig):
            _check_known_keys(value, parent, path, bases, f"{dotted}.")


def _parse_value(text: str) -> Any:
    return OmegaConf.from_dotlist([f"v={text}"]).v


def apply_overrides(cfg: DictConfig, overrides: Sequence[str], source: str = "command line") -> DictConfig:
    """Apply ``key.sub=value`` overrides in place and return ``cfg``.

    Raises:
        ValueError: malformed override, unknown key, or a value whose type differs from the existing one.
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"{source}: override {item!r} must look like key.sub=value")
        key, text = item.split("=", 1)
        key = key.strip().lstrip("-")
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
        known = isinstance(node, DictConfig) and leaf in node.keys()  # noqa: SIM118 (keys() also lists MISSING values)
        if (not known and key.startswith("model.args.") and isinstance(node, DictConfig | None)
                and _renamed_model_arg(cfg, key) is None):
            # the model's builder checks its arguments (names, types, nesting) when the model is built, so a model
            # argument the config file leaves at the builder's default can be set here
            OmegaConf.update(cfg, key, _parse_value(text), merge=True)
            continue
        if not known:
            known = sorted(node.keys()) if isinstance(node, DictConfig) else []
            renamed = _renamed_model_arg(cfg, key)
            removed = REMOVED_KEYS.get(key)
            raise ValueError(f"{source}: unknown config key {key!r}" +
                             (f" (renamed: {renamed})" if renamed else "") +
                             (f" (removed: {removed})" if removed else "") +
                             (f"; keys under {parent or 'the top level'}: {', '.join(map(str, known))}"
                              if known else ""))
        old = None if OmegaConf.is_missing(node, leaf) else node[leaf]
        new = _parse_value(text)
        if isinstance(old, DictConfig) and new is not None and not isinstance(new, (dict, DictConfig)):
            renamed = _renamed_model_arg(cfg, key)
            raise ValueError(f"{source}: {key} is a group of options ({', '.join(map(str, old.keys()))}), not a "
                             f"{type(new).__name__}; set one of them, e.g. " +
                             (renamed if renamed else f"{key}.{next(iter(old.keys()), 'name')}=...") +
                             (f"={text}" if renamed else ""))
        if old is not None and not isinstance(old, (DictConfig, ListConfig)):
            ok = (type(new) is type(old) or (isinstance(old, float) and isinstance(new, int)
                                             and not isinstance(new, bool)) or new is None)
            if not ok:
                raise ValueError(f"{source}: {key} expects a {type(old).__name__} (now {old!r}), got {text!r}")
            if isinstance(old, float) and isinstance(new, int):
                new = float(new)
        OmegaConf.update(cfg, key, new, merge=True)
    return cfg



def _renamed_model_arg(cfg: DictConfig, key: str) -> str | None:
    """``model.args.<new name>`` when ``key`` is a model argument that its family renamed, else None."""
    prefix = "model.args."
    name = OmegaConf.select(cfg, "model.name", default=None)
    if not key.startswith(prefix) or not isinstance(name, str):
        return None
    import demopose.models  # noqa: F401  (registers the families)
    from demopose.models.registry import renamed_arg

    new = renamed_arg(name, key[len(prefix):])
    return prefix + new if new else None


def load_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Load a config with its ``_base_`` chain, then apply dotted ``overrides``."""
    path = resolve_config_path(name_or_path)
    cfg = _load_tree(path)
    apply_overrides(cfg, overrides)
    return cfg


def save_config(cfg: DictConfig, path: str | Path) -> None:
    """Write the fully resolved config as YAML, atomically."""
    write_text_atomic(path, OmegaConf.to_yaml(cfg, resolve=True))
