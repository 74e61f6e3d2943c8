"""Domain-randomisation settings of the synthetic generator and the version presets.

:class:`Randomization` groups the knobs added in generator version 2 (materials, extra lights, background
textures and clutter); the camera/scene ranges live in :class:`~demopose.synth.scene.SceneConfig`, the
sensor models in :class:`~demopose.synth.noise.DepthNoiseConfig` and
:class:`~demopose.synth.noise.ColorNoiseConfig`. :func:`preset` returns all four for a generator
version: ``"v1"`` reproduces version-1 frames bit for bit (every new knob off, the old ranges), ``"v2"``
holds the version-2 defaults, chosen from statistics of the real REAL275 fixture frame
(``benchmarks/real_frame_stats.py``; ``docs/synthetic_data.md`` lists each default and its source).

Every setting is recorded in the split's ``<split>_synth.json`` (``SynthConfig.identity``).
"""

from __future__ import annotations

from dataclasses import dataclass

from demopose.synth.noise import ColorNoiseConfig, DepthNoiseConfig
from demopose.synth.scene import SceneConfig

__all__ = ["PRESETS", "V2_RANDOMIZATION", "Randomization", "preset"]

PRESETS: tuple[str, ...] = ("v1", "v2")


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


def preset(name: str) -> tuple[SceneConfig, Randomization, DepthNoiseConfig, ColorNoiseConfig]:
    """``(scene, randomization, depth noise, colour noise)`` settings of a generator version preset.

    Raises:
        ValueError: unknown preset.
    """
    if name == "v1":
        return SceneConfig.v1(), Randomization(), DepthNoiseConfig.v1(), ColorNoiseConfig.v1()
    if name == "v2":
        return SceneConfig(), V2_RANDOMIZATION, DepthNoiseConfig(), ColorNoiseConfig()
    raise ValueError(f"preset: expected one of {PRESETS}, got {name!r}")


V2_RANDOMIZATION = Randomization(
    textured=0.7, specular=0.4, dark=0.2, lights=(1, 3),
    table_textures=("wood", "carpet", "carpet", "cloth", "paper", "noise", "checker", "tiles"),
    floor_textures=("carpet", "wood", "tiles", "noise"),
    wall_textures=("paint", "paint", "noise", "paper"),
    clutter=(0, 4),
)
"""The version-2 randomisation defaults (see ``docs/synthetic_data.md``)."""
