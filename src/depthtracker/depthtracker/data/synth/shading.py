"""The light model shared by the room and the objects: ambient plus Lambertian from one directional light."""

from __future__ import annotations

import numpy as np

from depthtracker.data.synth.config import SynthConfig

__all__ = ["light_vector", "lambert"]


def light_vector(cfg: SynthConfig) -> np.ndarray:
    """(3,) float64 unit vector towards the light, world frame."""
    light = np.asarray(cfg.light_dir, np.float64)
    return light / np.linalg.norm(light)


def lambert(normals: np.ndarray, light: np.ndarray, ambient: float) -> np.ndarray:
    """Brightness factor (...,) in [ambient, 1] of unit ``normals`` (..., 3) lit from unit direction ``light``."""
    return ambient + (1.0 - ambient) * np.clip(normals @ light, 0.0, None)
