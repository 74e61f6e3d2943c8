"""Domain-randomisation and shape-variety settings of the synthetic generator and the version presets.

:class:`Randomization` groups the knobs added in generator version 2 (materials, extra lights, background
textures and clutter), :class:`ShapeVariety` those added in version 3 (object sizes and proportions, laptop
lid angles, mug handles, camera lenses, bottle and bowl profiles); the camera/scene ranges live in
:class:`~demopose.synth.scene.SceneConfig`, the sensor models in :class:`~demopose.synth.noise.DepthNoiseConfig`
and :class:`~demopose.synth.noise.ColorNoiseConfig`. :func:`preset` returns all five for a generator
version: ``"v1"`` reproduces version-1 frames bit for bit (every new knob off, the old ranges), ``"v2"``
reproduces version-2 frames bit for bit (its defaults were chosen from statistics of the real REAL275
fixture frame, ``benchmarks/real_frame_stats.py``), ``"v3"`` adds the shape variety, whose defaults come
from the category mean sizes of REAL275 and CAMERA and the fixture's object models
(notes/depth_and_eval.md §1.5, §1.10, §5.6; ``docs/synthetic_data.md`` lists each default and its source).

Every setting is recorded in the split's ``<split>_synth.json`` (``SynthConfig.identity``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from demopose.synth.noise import ColorNoiseConfig, DepthNoiseConfig
from demopose.synth.scene import SceneConfig

__all__ = ["BOTTLE_SHOULDERS", "HANDLE_KINDS", "PRESETS", "PRESET_VERSIONS", "SHAPE_CATEGORIES", "V2_RANDOMIZATION",
           "V3_SHAPES", "Randomization", "ShapeVariety", "preset"]

PRESETS: tuple[str, ...] = ("v1", "v2", "v3")
PRESET_VERSIONS: dict[str, int] = {"v1": 1, "v2": 2, "v3": 3}
"""The generator version whose frames each preset makes (recorded in the split, see ``generate.py``)."""
SHAPE_CATEGORIES: tuple[str, ...] = ("bottle", "bowl", "camera", "can", "laptop", "mug")


@dataclass(frozen=True)
class Randomization:
    """Version-2 domain randomisation (all off: version 1).

    Attributes:
        textured: share of objects (and distractors) with a per-pixel procedural texture
            (:mod:`demopose.synth.materials`).
        specular: share of glossy objects (Blinn-Phong highlight; glossy pixels facing the camera lose
            depth, see ``DepthNoiseConfig.specular_holes``).
        dark: share of dark objects (albedo × 0.05-0.2: lose depth on a structured-light sensor).
        lights: inclusive range of the number of lights (the first casts shadows).
        light_strength: diffuse radiance range of the extra lights.
        table_textures, floor_textures, wall_textures: texture kinds drawn from
            (:data:`demopose.synth.backgrounds.BACKGROUND_KINDS`).
        clutter: inclusive range of flat clutter items (boards, books, screens, paper) per scene.
        clutter_standing: probability that a clutter item stands upright (occluding what is behind it).
    """

    textured: float = 0.0
    specular: float = 0.0
    dark: float = 0.0
    lights: tuple[int, int] = (1, 1)
    light_strength: tuple[float, float] = (0.15, 0.5)
    table_textures: tuple[str, ...] = ("wood", "wood", "noise", "checker")
    floor_textures: tuple[str, ...] = ("noise", "checker", "wood")
    wall_textures: tuple[str, ...] = ("noise",)
    clutter: tuple[int, int] = (0, 0)
    clutter_standing: float = 0.3

    @property
    def enabled(self) -> bool:
        """Whether anything beyond version 1 is drawn (the extra random stream is used)."""
        return self != Randomization()


def _per_category(value, field: str) -> tuple[tuple[str, float, float], ...]:
    """``((category, low, high), ...)`` in :data:`SHAPE_CATEGORIES` order from a mapping or such tuples."""
    items = value.items() if isinstance(value, dict) else [(c, (lo, hi)) for c, lo, hi in value]
    d = {str(c): (float(lo), float(hi)) for c, (lo, hi) in items}
    bad = sorted(set(d) - set(SHAPE_CATEGORIES))
    if bad or any(not 0 < lo <= hi for lo, hi in d.values()):
        raise ValueError(f"{field}: expected categories of {SHAPE_CATEGORIES} with 0 < LOW <= HIGH, got {value!r}")
    return tuple((c, *d[c]) for c in SHAPE_CATEGORIES if c in d)


HANDLE_KINDS: tuple[str, ...] = ("round", "square", "ear")
"""Mug handle shapes of version 3 (:attr:`ShapeVariety.handle_kinds`)."""
BOTTLE_SHOULDERS: tuple[str, ...] = ("round", "conical", "flat", "straight")
"""Bottle shoulder profiles of version 3 (:attr:`ShapeVariety.bottle_shoulders`)."""


@dataclass(frozen=True)
class ShapeVariety:
    """Version-3 object shape and size variety (:mod:`demopose.synth.shapes`); the defaults are version 3's.

    Generator versions 1 and 2 have no such settings (``SynthConfig.shapes = None``: their builders, bit
    for bit). Every object stays in its NOCS canonical frame (y up, mug handle and camera lens on +x, laptop
    hinge at -x), centred on its tight box.

    Attributes:
        sizes: per category ``(category, low, high)``: range of the object's NOCS scale (tight-box diagonal)
            as a multiple of the diagonal of the REAL275 mean size; the finished mesh is scaled uniformly
            to a diagonal drawn from it, so every instance's diagonal lies exactly inside.
        aspects: per category ``(category, low, high)``: range of its main proportion: bottle, bowl, can:
            height / diameter; mug: height / body diameter; camera: height / width (y / z); laptop: base
            depth / width (x / z of the base).
        lid_angle: laptop lid opening, degrees between base and lid (90: upright).
        handle_kinds: mug handle shapes drawn from: ``round`` (C, half ellipse), ``square`` (D, squared
            corners), ``ear`` (a small loop high on the body).
        handle_reach: how far the handle sticks out, a multiple of the body diameter.
        handle_thickness: handle tube radius, a multiple of the mug height.
        lens_share: share of cameras with a lens barrel (the others show only the lens mount, on +x).
        lens_length: lens barrel length, a multiple of the body width (z).
        lens_diameter: lens barrel diameter, a multiple of the body height.
        bottle_shoulders: bottle shoulder profiles drawn from: ``round``, ``conical``, ``flat`` (a short
            shoulder to a long neck, wine-bottle like), ``straight`` (no shoulder: neck as wide as a
            cap, e.g. a shampoo or sauce bottle).
        bowl_flare: exponent of the bowl wall curve (< 1: steep walls, a cup-like bowl; > 1: flared, a
            plate-like bowl).
    """

    sizes: tuple[tuple[str, float, float], ...] = tuple((c, 0.8, 1.2) for c in SHAPE_CATEGORIES)
    aspects: tuple[tuple[str, float, float], ...] = (
        ("bottle", 2.0, 3.25), ("bowl", 0.32, 0.58), ("camera", 0.56, 0.98), ("can", 1.32, 2.65),
        ("laptop", 0.62, 0.78), ("mug", 0.58, 1.64))
    lid_angle: tuple[float, float] = (70.0, 150.0)
    handle_kinds: tuple[str, ...] = HANDLE_KINDS
    handle_reach: tuple[float, float] = (0.22, 0.53)
    handle_thickness: tuple[float, float] = (0.04, 0.08)
    lens_share: float = 0.67
    lens_length: tuple[float, float] = (0.25, 0.85)
    lens_diameter: tuple[float, float] = (0.45, 0.75)
    bottle_shoulders: tuple[str, ...] = BOTTLE_SHOULDERS
    bowl_flare: tuple[float, float] = (0.5, 2.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", _per_category(self.sizes, "sizes"))
        object.__setattr__(self, "aspects", _per_category(self.aspects, "aspects"))
        if not self.handle_kinds or set(self.handle_kinds) - set(HANDLE_KINDS):
            raise ValueError(f"handle_kinds: expected some of {HANDLE_KINDS}, got {self.handle_kinds!r}")
        if not self.bottle_shoulders or set(self.bottle_shoulders) - set(BOTTLE_SHOULDERS):
            raise ValueError(f"bottle_shoulders: expected some of {BOTTLE_SHOULDERS}, got {self.bottle_shoulders!r}")
        if not 0.0 <= self.lens_share <= 1.0:
            raise ValueError(f"lens_share: expected a share in [0, 1], got {self.lens_share!r}")
        if not 20.0 <= self.lid_angle[0] <= self.lid_angle[1] <= 175.0:
            raise ValueError(f"lid_angle: expected 20 <= LOW <= HIGH <= 175 degrees, got {self.lid_angle!r}")

    def size(self, category: str) -> tuple[float, float]:
        """``(low, high)`` diagonal range of ``category`` (multiples of the REAL mean size's diagonal)."""
        return next((lo, hi) for c, lo, hi in self.sizes if c == category)

    def aspect(self, category: str) -> tuple[float, float]:
        """``(low, high)`` proportion range of ``category`` (see :attr:`aspects`)."""
        return next((lo, hi) for c, lo, hi in self.aspects if c == category)

    def replace_ranges(self, field: str, updates) -> ShapeVariety:
        """A copy with the per-category ranges in ``updates`` (``{category: (low, high)}``) replaced."""
        d = {c: (lo, hi) for c, lo, hi in getattr(self, field)}
        d.update(updates)
        return replace(self, **{field: _per_category(d, field)})


V3_SHAPES = ShapeVariety()
"""The version-3 shape variety defaults (see ``docs/synthetic_data.md``)."""


def preset(name: str) -> tuple[SceneConfig, Randomization, DepthNoiseConfig, ColorNoiseConfig, ShapeVariety | None]:
    """``(scene, randomization, depth noise, colour noise, shapes)`` settings of a generator version preset
    (``shapes`` is None before version 3: the builders of versions 1 and 2).

    Raises:
        ValueError: unknown preset.
    """
    if name == "v1":
        return SceneConfig.v1(), Randomization(), DepthNoiseConfig.v1(), ColorNoiseConfig.v1(), None
    if name == "v2":
        return SceneConfig(), V2_RANDOMIZATION, DepthNoiseConfig(), ColorNoiseConfig(), None
    if name == "v3":
        return SceneConfig(), V2_RANDOMIZATION, DepthNoiseConfig(), ColorNoiseConfig(), V3_SHAPES
    raise ValueError(f"preset: expected one of {PRESETS}, got {name!r}")


V2_RANDOMIZATION = Randomization(
    textured=0.7, specular=0.4, dark=0.2, lights=(1, 3),
    table_textures=("wood", "carpet", "carpet", "cloth", "paper", "noise", "checker", "tiles"),
    floor_textures=("carpet", "wood", "tiles", "noise"),
    wall_textures=("paint", "paint", "noise", "paper"),
    clutter=(0, 4),
)
"""The version-2 randomisation defaults (see ``docs/synthetic_data.md``)."""
