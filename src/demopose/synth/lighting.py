"""Extra lights for the synthetic generator (domain randomisation of the illumination).

The scene's first light (:class:`demopose.synth.scene.Light`, drawn as in generator version 1) casts
shadows; :func:`sample_extra_lights` adds ``n - 1`` more directional lights of their own direction,
colour temperature and strength, which shade (Lambert + optional Blinn-Phong highlight) but cast no
shadow (one shadow ray per pixel and light is the renderer's largest cost). Several lights of different
colours give the multi-coloured soft shading of indoor rooms (ceiling lamps, windows).
"""

from __future__ import annotations

import math

import numpy as np

from demopose.synth.scene import Light, color_temperature_rgb

__all__ = ["sample_extra_lights"]


def sample_extra_lights(rng: np.random.Generator, n: int, camera_from_world: np.ndarray,
                        color_temperature: tuple[float, float],
                        strength: tuple[float, float] = (0.15, 0.5)) -> list[Light]:
    """``n`` extra directional lights (no ambient term), camera frame.

    Args:
        rng: the frame's extra-randomisation generator. n: number of lights (>= 0).
        camera_from_world: ``(3, 3)`` rotation world (y up) -> camera.
        color_temperature: kelvin range. strength: diffuse radiance range (the first light's is 0.55-1).

    Returns:
        lights whose ``direction`` points from the surface towards the light (camera frame).
    """
    out = []
    for _ in range(int(n)):
        el = math.radians(rng.uniform(15, 90))
        az = rng.uniform(0, 2 * math.pi)
        d = np.array([math.cos(el) * math.cos(az), math.sin(el), math.cos(el) * math.sin(az)])
        col = color_temperature_rgb(rng.uniform(*color_temperature)) * rng.uniform(*strength)
        out.append(Light(direction=camera_from_world @ d, color=col, ambient=np.zeros(3)))
    return out
