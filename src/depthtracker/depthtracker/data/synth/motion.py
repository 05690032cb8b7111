"""Object motion: objects glide on the floor, spin about z, and bounce off the walls and off each other.

Model: each object is a disc of radius ``radius_xy`` (its footprint's bounding circle) moving at constant velocity
in the floor plane and turning at a constant yaw rate. Integration uses ``physics_substeps`` explicit steps per
frame. A disc that crosses a wall is reflected about it (speed kept, the normal component flipped). Two discs that
overlap while approaching exchange the velocity components along their centre line (an elastic collision of equal
masses: momentum and kinetic energy are kept) and are pushed apart to touching (a wall can hold one back for a
substep, so solids may graze each other briefly; rendering is exact either way). The simulation is sequential and
cached, so ``state(i)`` is the same whatever order frames are asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from depthtracker.data.synth.config import SynthConfig
from depthtracker.data.synth.objects import ObjectSpec

__all__ = ["ObjectStates", "Motion"]

_PLACEMENT_TRIES = 2000  # rejection-sampling attempts per object at start
_PLACEMENT_GAP_M = 0.05  # free space between footprints at start, m


@dataclass(frozen=True, eq=False)
class ObjectStates:
    """Poses of all objects at one frame: ``centers`` (K, 3) float64 world metres, ``yaws`` (K,) float64 radians
    (rotation of the local frame about world z); row k is ``objects[k]`` (id k + 1)."""

    centers: np.ndarray
    yaws: np.ndarray


class Motion:
    """Deterministic motion of ``objects`` in the room of ``cfg``, sampled at the frame rate."""

    def __init__(self, cfg: SynthConfig, objects: tuple[ObjectSpec, ...], rng: np.random.Generator) -> None:
        self._dt = 1.0 / (cfg.fps * cfg.physics_substeps)
        self._substeps = cfg.physics_substeps
        L, W, _ = cfg.room_size_m
        self._radius = np.array([o.radius_xy for o in objects], np.float64).reshape(-1)
        self._hz = np.array([o.half_extents[2] for o in objects], np.float64).reshape(-1)
        self._half_room = np.array([L / 2, W / 2])
        k = len(objects)
        pos = np.zeros((k, 2))
        for i in range(k):
            lim = self._half_room - self._radius[i]
            for _ in range(_PLACEMENT_TRIES):
                p = rng.uniform(-lim, lim)
                gaps = np.hypot(*(pos[:i] - p).T) - self._radius[:i] - self._radius[i]
                if (gaps > _PLACEMENT_GAP_M).all():
                    break
            else:
                raise ValueError(f"num_objects={k} objects of object_size_m={cfg.object_size_m} do not fit in "
                                 f"room_size_m={cfg.room_size_m}; use fewer or smaller objects or a larger room")
            pos[i] = p
        heading = rng.uniform(0.0, 2 * math.pi, size=k)
        speed = rng.uniform(*cfg.speed_mps, size=k)
        self._pos = pos
        self._vel = np.stack([np.cos(heading), np.sin(heading)], axis=1) * speed[:, None]  # (K, 2) m/s
        self._yaw = rng.uniform(-math.pi, math.pi, size=k)
        self._spin = np.radians(rng.uniform(-cfg.spin_dps, cfg.spin_dps, size=k))  # (K,) rad/s
        self._frames: list[ObjectStates] = []
        self._record()

    def _record(self) -> None:
        centers = np.concatenate([self._pos, self._hz[:, None]], axis=1)  # objects stand on the floor
        self._frames.append(ObjectStates(centers=centers, yaws=self._yaw.copy()))

    def _step(self) -> None:
        dt = self._dt
        self._pos += self._vel * dt
        self._yaw = np.mod(self._yaw + self._spin * dt + math.pi, 2 * math.pi) - math.pi
        lim = self._half_room[None, :] - self._radius[:, None]  # (K, 2) largest |centre| per axis
        low, high = self._pos < -lim, self._pos > lim
        self._pos = np.where(low, -2 * lim - self._pos, np.where(high, 2 * lim - self._pos, self._pos))
        self._vel = np.where(low, np.abs(self._vel), np.where(high, -np.abs(self._vel), self._vel))
        k = len(self._radius)
        if k < 2:
            return
        diff = self._pos[:, None, :] - self._pos[None, :, :]  # (K, K, 2)
        dist = np.hypot(diff[..., 0], diff[..., 1])
        touch = self._radius[:, None] + self._radius[None, :]
        ii, jj = np.nonzero(np.triu(dist < touch, 1))
        for i, j in zip(ii.tolist(), jj.tolist()):
            d = self._pos[i] - self._pos[j]
            r = float(np.hypot(*d))
            n = d / r if r > 1e-12 else np.array([1.0, 0.0])
            closing = float((self._vel[i] - self._vel[j]) @ n)
            if closing < 0:  # approaching: swap the normal components (equal masses, elastic)
                self._vel[i] -= closing * n
                self._vel[j] += closing * n
            push = 0.5 * (self._radius[i] + self._radius[j] - r) * n
            self._pos[i] += push
            self._pos[j] -= push
        self._pos = np.clip(self._pos, -lim, lim)

    def state(self, index: int) -> ObjectStates:
        """Object poses at frame ``index`` (>= 0), simulating forward as needed."""
        while len(self._frames) <= index:
            for _ in range(self._substeps):
                self._step()
            self._record()
        return self._frames[index]
