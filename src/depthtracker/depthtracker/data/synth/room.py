"""The closed, textured room: exact ray casting of its six planes and its static background image per camera.

The room is the axis-aligned box ``[-L/2, L/2] x [-W/2, W/2] x [0, H]`` seen from inside, so every ray leaves it
through exactly one face and every pixel gets a finite depth. Textures are functions of the hit point (so they are
consistent across cameras and give depth cues): a floor checkerboard whose tiles carry a seeded brightness jitter,
brick walls (one tint per wall, seeded per-brick jitter, mortar lines) and a ceiling with a 1 m grid. Shading is
ambient plus Lambertian from the configured light direction.
"""

from __future__ import annotations

import numpy as np

from depthtracker.data.synth.config import SynthConfig
from depthtracker.data.synth.shading import lambert, light_vector
from depthtracker.geometry.camera import pixel_rays
from depthtracker.types import CameraModel

__all__ = ["room_hit", "render_background", "make_seed_table"]

# Texture design (appearance only, not behaviour): sizes in metres, colours as linear RGB in [0, 1].
_FLOOR_TONES = np.array([[0.62, 0.58, 0.52], [0.32, 0.30, 0.29]])
_WALL_TINTS = np.array([[0.70, 0.42, 0.35], [0.45, 0.55, 0.68], [0.55, 0.65, 0.45], [0.72, 0.66, 0.45]])
_CEILING = np.array([0.85, 0.85, 0.82])
_BRICK_H, _BRICK_L, _MORTAR = 0.25, 0.5, 0.02
_CEILING_GRID, _GRID_LINE = 1.0, 0.03
_JITTER_TABLE = 61  # side of the seeded per-tile/per-brick brightness table (prime, so repeats are not obvious)


def room_hit(cfg: SynthConfig, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exit distance and face of rays from ``origin`` (inside the room) along ``dirs`` (..., 3).

    Returns ``t`` (...,) float64 with ``origin + t * dirs`` on the room surface, and ``face`` (...,) int8:
    0/1 = wall x = -L/2 / +L/2, 2/3 = wall y = -W/2 / +W/2, 4 = floor (z = 0), 5 = ceiling (z = H).
    """
    L, W, H = cfg.room_size_m
    lo = np.array([-L / 2, -W / 2, 0.0])
    hi = np.array([L / 2, W / 2, H])
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(dirs > 0, hi, lo)  # (..., 3) the plane each axis's ray component heads to
        ts = np.where(dirs != 0, (bound - origin) / dirs, np.inf)  # (..., 3)
    axis = np.argmin(ts, axis=-1)
    t = np.take_along_axis(ts, axis[..., None], axis=-1)[..., 0]
    positive = np.take_along_axis(dirs, axis[..., None], axis=-1)[..., 0] > 0
    face = (2 * axis + positive).astype(np.int8)
    return t, face


def _jitter(table: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    n = table.shape[0]
    return table[np.mod(i, n), np.mod(j, n)]


def render_background(cfg: SynthConfig, cam: CameraModel, seed_table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth (H, W) float32 metres (optical z) and RGB (H, W, 3) uint8 of the empty room seen by ``cam``.

    ``seed_table``: (n, n, 5) float64 brightness factors (floor tiles, then the four walls' bricks), seeded per world.
    """
    R = cam.T_world_cam[:3, :3]
    origin = cam.T_world_cam[:3, 3]
    dirs = pixel_rays(cam.K, cam.width, cam.height) @ R.T  # (H, W, 3) world rays with optical z = 1
    t, face = room_hit(cfg, origin, dirs)  # t is the depth because the optical z of every ray is 1
    p = origin + t[..., None] * dirs  # (H, W, 3) hit points
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    colour = np.empty_like(p)
    normals = np.zeros_like(p)

    floor = face == 4
    i = np.floor(x[floor] / cfg.floor_tile_m).astype(np.int64)
    j = np.floor(y[floor] / cfg.floor_tile_m).astype(np.int64)
    colour[floor] = _FLOOR_TONES[(i + j) & 1] * _jitter(seed_table[..., 0], i, j)[:, None]
    normals[floor] = (0.0, 0.0, 1.0)

    ceiling = face == 5
    gx = np.mod(x[ceiling], _CEILING_GRID) < _GRID_LINE
    gy = np.mod(y[ceiling], _CEILING_GRID) < _GRID_LINE
    colour[ceiling] = _CEILING * np.where(gx | gy, 0.6, 1.0)[:, None]
    normals[ceiling] = (0.0, 0.0, -1.0)

    for wall in range(4):
        m = face == wall
        s = y[m] if wall < 2 else x[m]  # coordinate along the wall
        row = np.floor(z[m] / _BRICK_H).astype(np.int64)
        shifted = s + 0.5 * _BRICK_L * (row & 1)  # running bond: odd rows shifted by half a brick
        col = np.floor(shifted / _BRICK_L).astype(np.int64)
        mortar = (np.mod(z[m], _BRICK_H) < _MORTAR) | (np.mod(shifted, _BRICK_L) < _MORTAR)
        brick = _WALL_TINTS[wall] * _jitter(seed_table[..., 1 + wall], row, col)[:, None]
        colour[m] = np.where(mortar[:, None], 0.8, brick)
        n = np.zeros(3)
        n[wall // 2] = 1.0 if wall % 2 == 0 else -1.0  # inward normal
        normals[m] = n

    shade = lambert(normals, light_vector(cfg), cfg.ambient)
    rgb = np.clip(colour * shade[..., None] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return t.astype(np.float32), rgb


def make_seed_table(seed: int) -> np.ndarray:
    """(n, n, 5) brightness jitter in [0.8, 1.2] for the floor tiles and the four walls' bricks."""
    rng = np.random.default_rng([seed, 0x5EED])
    return rng.uniform(0.8, 1.2, size=(_JITTER_TABLE, _JITTER_TABLE, 5))
