"""Category tables: the one source of truth for ids, names, symmetry and mean sizes.

Every dataset declares a :class:`CategoryTable`; metrics, losses and readers take a table (or a
symmetry flag derived from it), never category-name literals.

Symmetry rule (NOCS protocol, hughw19/NOCS_CVPR2019 ``utils.py``): bottle, bowl and can are
symmetric about their y axis; a mug is treated as y-symmetric only when its handle is not visible;
camera and laptop are asymmetric. HouseCat6D's evaluation treats bottle, can and glass as
y-symmetric (notes/cleanpose.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Category",
    "CategoryTable",
    "HOUSECAT6D",
    "NOCS_CAMERA",
    "NOCS_REAL",
    "get_table",
]


@dataclass(frozen=True)
class Category:
    """One object category.

    Attributes:
        id: 1-based id as stored in the dataset files (0 is background / distractor).
        name: lower-case name.
        y_symmetric: continuous rotational symmetry about the object y axis.
        handle_rule: symmetric about y only when the handle is *not* visible (NOCS mug rule).
        mean_size: mean metric extents ``(x, y, z)`` in metres over the training instances, or None.
        synset: ShapeNet synset id for CAMERA-style data, when one exists.
        mirror_xy: the shape is mirror-symmetric about its object xy plane (z -> -z), e.g. a laptop or a
            mug with its handle on +x; used by GPV-Pose's symmetry-aware reconstruction (sym_info[1]).
    """

    id: int
    name: str
    y_symmetric: bool = False
    handle_rule: bool = False
    mean_size: tuple[float, float, float] | None = None
    synset: str | None = None
    mirror_xy: bool = False


@dataclass(frozen=True)
class CategoryTable:
    """The categories of one dataset, indexed by id and by name."""

    name: str
    categories: tuple[Category, ...]

    def __post_init__(self) -> None:
        ids = [c.id for c in self.categories]
        if ids != list(range(1, len(ids) + 1)):
            raise ValueError(f"category table {self.name}: ids must be 1..N in order, got {ids}")

    def __len__(self) -> int:
        return len(self.categories)

    def __iter__(self):
        return iter(self.categories)

    @property
    def names(self) -> tuple[str, ...]:
        """Names in id order (index 0 is id 1)."""
        return tuple(c.name for c in self.categories)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.categories)

    def __getitem__(self, key: int | str) -> Category:
        """Look up by id (int, 1-based) or by name (str)."""
        if isinstance(key, str):
            for c in self.categories:
                if c.name == key:
                    return c
            raise KeyError(f"category table {self.name}: no category named {key!r}; known: {self.names}")
        k = int(key)
        if not 1 <= k <= len(self.categories):
            raise KeyError(f"category table {self.name}: no category id {k}; valid ids are 1..{len(self)}")
        return self.categories[k - 1]

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, TypeError, ValueError):
            return False
        return True

    def is_y_symmetric(self, class_id: int, handle_visible: bool = True) -> bool:
        """Whether an instance's rotation about y is free (category symmetry or the mug handle rule)."""
        c = self[class_id]
        return c.y_symmetric or (c.handle_rule and not handle_visible)

    def symmetry_flags(self, class_ids: np.ndarray, handle_visible: np.ndarray | None = None) -> np.ndarray:
        """Vectorised :meth:`is_y_symmetric`: ``class_ids (N,)``, ``handle_visible (N,)`` -> ``(N,)`` bool."""
        class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        hv = np.ones_like(class_ids, dtype=bool) if handle_visible is None else \
            np.asarray(handle_visible).reshape(-1).astype(bool)
        sym = np.array([False] + [c.y_symmetric for c in self.categories])
        rule = np.array([False] + [c.handle_rule for c in self.categories])
        return sym[class_ids] | (rule[class_ids] & ~hv)

    def mean_sizes(self) -> np.ndarray:
        """``(N + 1, 3)`` mean sizes in metres; row 0 (background) and unknown rows are zero."""
        out = np.zeros((len(self) + 1, 3))
        for c in self.categories:
            if c.mean_size is not None:
                out[c.id] = c.mean_size
        return out


def _mm(x: float, y: float, z: float) -> tuple[float, float, float]:
    return (x / 1000.0, y / 1000.0, z / 1000.0)


# Mean sizes: GPV-Pose datasets/load_data.py get_fs_net_scale (notes/depth_and_eval.md §1.5).
NOCS_REAL = CategoryTable(
    "nocs_real",
    (
        Category(1, "bottle", y_symmetric=True, mean_size=_mm(87, 220, 89), synset="02876657"),
        Category(2, "bowl", y_symmetric=True, mean_size=_mm(165, 80, 165), synset="02880940"),
        Category(3, "camera", mean_size=_mm(88, 128, 156), synset="02942699"),
        Category(4, "can", y_symmetric=True, mean_size=_mm(68, 146, 72), synset="02946921"),
        Category(5, "laptop", mean_size=_mm(346, 200, 335), synset="03642806", mirror_xy=True),
        Category(6, "mug", handle_rule=True, mean_size=_mm(146, 83, 114), synset="03797390",
                 mirror_xy=True),
    ),
)
"""NOCS categories with the REAL275 mean sizes (used for Real and CAMERA+Real training)."""

NOCS_CAMERA = CategoryTable(
    "nocs_camera",
    (
        Category(1, "bottle", y_symmetric=True, mean_size=_mm(81, 218.5, 80.25), synset="02876657"),
        Category(2, "bowl", y_symmetric=True, mean_size=_mm(168.75, 67.75, 168.75), synset="02880940"),
        Category(3, "camera", mean_size=_mm(116, 121.75, 175.5), synset="02942699"),
        Category(4, "can", y_symmetric=True, mean_size=_mm(112.5, 188.25, 115), synset="02946921"),
        Category(5, "laptop", mean_size=_mm(145.25, 111.25, 168), synset="03642806", mirror_xy=True),
        Category(6, "mug", handle_rule=True, mean_size=_mm(167.5, 135, 124.25), synset="03797390",
                 mirror_xy=True),
    ),
)
"""NOCS categories with the CAMERA (ShapeNet synset) mean sizes (CAMERA-only training)."""

HOUSECAT6D = CategoryTable(
    "housecat6d",
    (
        Category(1, "box"),
        Category(2, "bottle", y_symmetric=True),
        Category(3, "can", y_symmetric=True),
        Category(4, "cup"),
        Category(5, "remote"),
        Category(6, "teapot"),
        Category(7, "cutlery"),
        Category(8, "glass", y_symmetric=True),
        Category(9, "shoe"),
        Category(10, "tube"),
    ),
)
"""HouseCat6D's 10 categories (mean sizes are computed from the training labels, not tabulated)."""

_TABLES = {t.name: t for t in (NOCS_REAL, NOCS_CAMERA, HOUSECAT6D)}


def get_table(name: str) -> CategoryTable:
    """Return a category table by name: ``nocs_real``, ``nocs_camera`` or ``housecat6d``."""
    try:
        return _TABLES[name]
    except KeyError:
        raise KeyError(f"unknown category table {name!r}; choose one of {sorted(_TABLES)}") from None
