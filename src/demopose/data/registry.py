"""The dataset registry: every reader declares how to recognise its layout, list and load its frames, check them,
open a split, and which category table its annotations use.

A reader file (:mod:`demopose.data.nocs`, :mod:`demopose.data.housecat6d`, :mod:`demopose.data.user_frames`) ends
with one :func:`register_reader` call; ``demopose check-data``, ``show`` and ``predict`` find the reader of a path
with :func:`detect`, and the engine opens a training or test split with :func:`get_reader` (``data.format``). A new
format is one reader file plus its registration (and its module in :data:`_BUILTIN`).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from demopose.categories import CategoryTable
    from demopose.data.check import CheckJob, Problem
    from demopose.data.frame import Frame

__all__ = ["DatasetReader", "FrameRef", "detect", "get_reader", "list_readers", "register_reader"]

_log = logging.getLogger(__name__)
_READERS: dict[str, DatasetReader] = {}
_BUILTIN = ("demopose.data.user_frames", "demopose.data.housecat6d", "demopose.data.nocs")
"""The modules whose import registers the readers shipped with demopose."""


@dataclass(frozen=True)
class FrameRef:
    """One frame a reader listed, not yet read.

    Attributes:
        name: a name unique within the listing and safe as a file name (``scene_1_0000``).
        source: what error messages name: the frame's file or prefix.
        load: reads the frame (raises ``ValueError`` / ``FileNotFoundError`` naming the file).
    """

    name: str
    source: str
    load: Callable[[], Frame]


@dataclass(frozen=True)
class DatasetReader:
    """A dataset format (see the module docstring).

    Attributes:
        name: the format's name, the value of ``data.format`` in a run config (``nocs``, ``housecat6d``).
        description: what its folders hold, for error messages.
        categories: name of the category table of its annotations (:func:`demopose.categories.get_table`), or None
            for frames without annotations (the model's table applies).
        detect: ``detect(path) -> layout | None``: the layout ``path`` is in (``nocs_frame``, ``housecat6d_root``,
            ...), None when it is not this format's. May raise ``ValueError`` for a path that is this format's but
            malformed (a frame file with a wrong name).
        list_frames: ``list_frames(path, layout, **options) -> [FrameRef]``: the frames under ``path``, in order.
        check: ``check(path, layout, categories) -> (problems, jobs)``: the problems found while listing (split
            lists, intrinsics files) and one job per frame returning that frame's problems
            (:func:`demopose.data.check.check_dataset` runs them); ``categories`` None: :attr:`categories`.
        open_split: ``open_split(root, subset, categories, **options) -> Sequence[Frame]``: the frames of a split
            for training or testing (``data.subset`` names, e.g. ``real_test``; ``train`` / ``val`` / ``test``), or
            None when the format has no splits.
        options: the keyword options ``list_frames`` and ``open_split`` take (run config ``data.<option>``,
            command-line flags); others given to :meth:`frames` / :meth:`split` are left out.
        priority: detection order (lower first): a folder may look like several formats (a ``camera.json`` folder
            of ``NAME_color.png`` files is the user's own frames, not a NOCS scene).
    """

    name: str
    description: str
    categories: str | None
    detect: Callable[[Path], str | None]
    list_frames: Callable[..., list[FrameRef]]
    check: Callable[[Path, str, CategoryTable | None], tuple[list[Problem], list[CheckJob]]]
    open_split: Callable[..., Sequence[Frame]] | None = None
    options: tuple[str, ...] = ()
    priority: int = 100

    def _options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in given.items() if k in self.options and v is not None}

    def frames(self, path: str | os.PathLike, layout: str | None = None, **options: Any) -> list[FrameRef]:
        """:attr:`list_frames` of ``path`` (``layout`` default: :attr:`detect`'s), with the options it takes."""
        p = Path(path)
        layout = layout or self.detect(p)
        if layout is None:
            raise ValueError(f"{p}: not a {self.name} dataset ({self.description})")
        return self.list_frames(p, layout, **self._options(options))

    def split(self, root: str | os.PathLike, subset: str, categories: CategoryTable | None = None,
              **options: Any) -> Sequence[Frame]:
        """:attr:`open_split` with the options it takes (``categories`` None: :attr:`categories`)."""
        if self.open_split is None:
            raise ValueError(f"data.format {self.name!r}: {self.description} have no splits to train or test on")
        if categories is None and self.categories is not None:
            from demopose.categories import get_table

            categories = get_table(self.categories)
        return self.open_split(Path(root), subset, categories, **self._options(options))


def register_reader(reader: DatasetReader) -> DatasetReader:
    """Register ``reader`` under its name (a later registration of the name replaces it, with a warning)."""
    if reader.name in _READERS and _READERS[reader.name] is not reader:
        _log.warning("dataset reader %r registered twice; the later one wins", reader.name)
    _READERS[reader.name] = reader
    return reader


def _load_builtin() -> None:
    for module in _BUILTIN:
        importlib.import_module(module)


def list_readers() -> list[DatasetReader]:
    """The registered readers in detection order."""
    _load_builtin()
    return sorted(_READERS.values(), key=lambda r: (r.priority, r.name))


def get_reader(name: str) -> DatasetReader:
    """The reader registered as ``name``.

    Raises:
        ValueError: unknown ``name`` (the message lists the registered formats).
    """
    _load_builtin()
    try:
        return _READERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset format {name!r}; registered formats: {sorted(_READERS)}") from None


def detect(path: str | os.PathLike) -> tuple[DatasetReader, str]:
    """The reader of ``path`` and the layout it is in, asking each reader in :func:`list_readers` order.

    Raises:
        FileNotFoundError: nothing at ``path``. ValueError: no reader knows its layout (the message lists what each
            reader looks for), or a reader found it malformed.
    """
    p = Path(path)
    readers = list_readers()
    for reader in readers:
        layout = reader.detect(p)
        if layout is not None:
            return reader, layout
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file, folder or frame prefix")
    raise ValueError(f"{p}: no known dataset layout (" + "; ".join(f"{r.name}: {r.description}" for r in readers)
                     + ")")
