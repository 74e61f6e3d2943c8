"""One behaviour for every builder's keyword arguments (:func:`demopose.models.registry.config_from_overrides`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from demopose.models import build_model, list_models
from demopose.models.registry import config_from_overrides


@dataclass(frozen=True)
class _Inner:
    enabled: bool = False
    size: int = 4
    widths: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class _Outer:
    name: str = "x"
    widths: tuple[int, ...] = (8, 8)
    nested: tuple = ((1, 2), (3, 4))
    inner: _Inner = field(default_factory=lambda: _Inner(size=7))
    args: dict = field(default_factory=lambda: {"a": 1, "sub": {"b": 2, "c": 3}})
    path: str | None = None


def test_unknown_keys_name_the_class_and_its_fields():
    with pytest.raises(ValueError, match=r"_Outer: unknown option\(s\) \['wdths'\]; _Outer expects some of "
                                         r"\['args', 'inner', 'name', 'nested', 'path', 'widths'\]"):
        config_from_overrides(_Outer(), {"wdths": [1]})
    with pytest.raises(ValueError, match=r"inner: unknown option\(s\) \['sise'\]; _Inner expects some of"):
        config_from_overrides(_Outer(), {"inner": {"sise": 1}})


def test_nested_options_merge_over_the_preset():
    cfg = config_from_overrides(_Outer(), {"inner": {"enabled": True}, "args": {"sub": {"b": 5}}})
    assert cfg.inner == _Inner(enabled=True, size=7)  # the preset's size survives
    assert cfg.args == {"a": 1, "sub": {"b": 5, "c": 3}}
    assert config_from_overrides(_Outer(), {"inner": None, "args": None}) == _Outer()
    assert config_from_overrides(_Outer(), {"inner": _Inner()}).inner == _Inner()  # an instance replaces
    with pytest.raises(ValueError, match=r"inner: expected a mapping .*write inner\.enabled=true"):
        config_from_overrides(_Outer(), {"inner": True})


def test_lists_become_tuples_where_the_field_is_a_tuple():
    cfg = config_from_overrides(_Outer(), {"widths": [1, 2], "nested": [[1], [2, [3]]], "inner": {"widths": [5]},
                                           "path": Path("a/b")})
    assert cfg.widths == (1, 2) and cfg.nested == ((1,), (2, (3,))) and cfg.inner.widths == (5,)
    assert cfg.path == "a/b"
    assert config_from_overrides(_Outer(), {"args": {"a": [1]}}).args["a"] == [1]  # not a tuple field: as given


@pytest.mark.parametrize("name", [n for n in list_models() if "small" in n])
def test_every_builder_refuses_unknown_keys_naming_its_config(name):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['no_such_option'\]; \w+Config expects some of"):
        build_model(name, no_such_option=1)


def test_every_builder_turns_lists_into_tuples():
    assert build_model("gpv_small", widths=[16, 16, 32, 32, 64]).config.widths == (16, 16, 32, 32, 64)
    assert build_model("mono_small", input_size=[256, 256]).config.input_size == (256, 256)
    m = build_model("demopose_small", feature_levels=[0], pose_args={"widths": [16, 16, 32, 32, 64]})
    assert m.config.feature_levels == (0,) and m.pose.config.widths == (16, 16, 32, 32, 64)
    assert m.config.pose_args["widths"] == [16, 16, 32, 32, 64]  # another builder's arguments, given on as such


def test_gpv_loss_weights_live_in_its_config(monkeypatch):
    """GPV-Pose's loss weights are ``GPVConfig.loss`` (``model.args.loss.<term>``), read by ``GPVPose.loss``."""
    import importlib
    from types import SimpleNamespace

    import torch

    gl = importlib.import_module("demopose.models.gpv_loss")  # the module (the package exports the function)
    from demopose.models.gpv import GPVLossWeights

    m = build_model("gpv_small", loss={"rot_1": 0.5})
    assert m.config.loss == GPVLossWeights(rot_1=0.5)  # the other weights: the defaults
    seen = []
    monkeypatch.setattr(gl, "gpv_loss", lambda pred, batch, w: seen.append(w) or {"loss": torch.zeros(())})
    pred = SimpleNamespace(outputs={})
    m.loss(pred, {"sym_info": None})
    m.loss(pred, {"sym_info": None}, GPVLossWeights(tran=1.0))
    assert seen == [GPVLossWeights(rot_1=0.5), GPVLossWeights(tran=1.0)]
    with pytest.raises(ValueError, match=r"loss: unknown option\(s\) \['rot'\]; GPVLossWeights expects"):
        build_model("gpv_small", loss={"rot": 1.0})
