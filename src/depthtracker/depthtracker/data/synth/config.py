"""Configuration of the synthetic world (one frozen dataclass, mirrored field for field by ``config/synth.yaml``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SynthConfig", "MIN_CAMERA_CLEARANCE_M"]

# Least height of the cameras above the tallest possible object, m. It keeps every camera outside every object and
# lets the renderer clip bounding boxes just in front of the camera plane without losing a hit (render.CameraView).
MIN_CAMERA_CLEARANCE_M = 0.05


def _int(name: str, value: object, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _num(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _range(name: str, value: object, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
    v = _num(name, value)
    if (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
        allowed = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")


def _tuple(name: str, value: object, n: int) -> tuple[float, ...]:
    if not isinstance(value, tuple) or len(value) != n:
        raise ValueError(f"{name} must be a tuple of {n} numbers, got {value!r}")
    return tuple(_num(name, v) for v in value)


@dataclass(frozen=True)
class SynthConfig:
    """The synthetic world: rig, room, objects, motion and sensor.

    World frame: x forward, y left, z up, metres; the room spans ``[-L/2, L/2] x [-W/2, W/2] x [0, H]`` with
    ``room_size_m = (L, W, H)``. Camera 0 and 1 form the rectified stereo pair (1 = 0 shifted by
    ``stereo_baseline_m`` along camera 0's x axis); the other cameras sit on a ring round the room looking inward.
    """

    cameras: int = 4  # number of cameras in the rig, >= 1; cameras 0 and 1 are the stereo pair when >= 2
    width: int = 640  # image width, pixels (>= 16)
    height: int = 480  # image height, pixels (>= 16)
    fps: float = 15.0  # frame rate, Hz (> 0); all cameras are synchronised
    seconds: float = 10.0  # sequence length, s (> 0); num_frames = round(seconds * fps)
    seed: int = 0  # RNG seed: same seed => byte-identical output, different seed => different scene
    start_time_ns: int = 1_700_000_000_000_000_000  # stamp of frame 0, ns (fixed so output is deterministic)
    hfov_deg: float = 70.0  # horizontal field of view of every camera, degrees in [10, 150]
    stereo_baseline_m: float = 0.12  # stereo baseline, m, in (0, room width / 2)
    camera_height_m: float = 1.6  # camera height above the floor, m, in [object_size_m max + 0.05, room height)
    ring_fraction: float = 0.85  # cameras sit on an ellipse at this fraction of the room's half extents, (0, 1)
    look_at_height_m: float = 0.3  # cameras look at the room centre at this height, m (sets the tilt)
    room_size_m: tuple[float, float, float] = (10.0, 8.0, 3.0)  # room length (x), width (y), height (z), m
    floor_tile_m: float = 0.5  # side of the floor's checkerboard tiles, m (> 0)
    num_objects: int = 8  # moving objects, in [0, 64]; classes are balanced (box, sphere, cylinder)
    object_size_m: tuple[float, float] = (0.3, 0.8)  # range of an object's largest extent, m (min <= max)
    speed_mps: tuple[float, float] = (0.4, 1.2)  # range of initial ground speeds, m/s (0 <= min <= max)
    spin_dps: float = 90.0  # largest yaw rate of an object, degrees/s (>= 0); the yaw rate is uniform in +-spin_dps
    physics_substeps: int = 8  # motion integration steps per frame (>= 1); more = more exact bounces
    ambient: float = 0.35  # ambient share of the lighting in [0, 1]; the rest is Lambertian from light_dir
    light_dir: tuple[float, float, float] = (0.3, 0.2, 1.0)  # direction towards the light, world frame (non-zero)
    noise_std: float = 0.0  # Gaussian sensor noise, 8-bit intensity units (0 = off), in [0, 64]; seeded
    visibility_margin: float = 1.0  # visibility's reference window: image grown by this many image sizes per side

    def __post_init__(self) -> None:
        _int("cameras", self.cameras, 1)
        _int("width", self.width, 16, 8192)
        _int("height", self.height, 16, 8192)
        _range("fps", self.fps, 0.0, 10_000.0, lo_open=True)
        _range("seconds", self.seconds, 0.0, 1e6, lo_open=True)
        if round(self.seconds * self.fps) < 1:
            raise ValueError(f"seconds must give at least one frame (seconds * fps >= 0.5), "
                             f"got seconds={self.seconds!r} at fps={self.fps!r}")
        _int("seed", self.seed, 0)
        _int("start_time_ns", self.start_time_ns, 0)
        _range("hfov_deg", self.hfov_deg, 10.0, 150.0)
        L, W, H = _tuple("room_size_m", self.room_size_m, 3)
        if min(L, W) < 2.0 or H < 1.0 or max(L, W, H) > 1000.0:
            raise ValueError(f"room_size_m must have length and width in [2, 1000] and height in [1, 1000], "
                             f"got {self.room_size_m!r}")
        _range("stereo_baseline_m", self.stereo_baseline_m, 0.0, W / 2, lo_open=True, hi_open=True)
        smin, smax = _tuple("object_size_m", self.object_size_m, 2)
        if not 0.0 < smin <= smax or smax > min(L, W) / 4:
            raise ValueError(f"object_size_m must satisfy 0 < min <= max <= room length and width / 4 "
                             f"({min(L, W) / 4}), got {self.object_size_m!r}")
        _range("camera_height_m", self.camera_height_m, round(smax + MIN_CAMERA_CLEARANCE_M, 9), H, hi_open=True)
        _range("ring_fraction", self.ring_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        _range("look_at_height_m", self.look_at_height_m, 0.0, self.camera_height_m, hi_open=True)
        _range("floor_tile_m", self.floor_tile_m, 0.0, 100.0, lo_open=True)
        _int("num_objects", self.num_objects, 0, 64)
        vmin, vmax = _tuple("speed_mps", self.speed_mps, 2)
        if not 0.0 <= vmin <= vmax <= 100.0:
            raise ValueError(f"speed_mps must satisfy 0 <= min <= max <= 100, got {self.speed_mps!r}")
        _range("spin_dps", self.spin_dps, 0.0, 3600.0)
        _int("physics_substeps", self.physics_substeps, 1, 1000)
        _range("ambient", self.ambient, 0.0, 1.0)
        light = _tuple("light_dir", self.light_dir, 3)
        if math.hypot(*light) < 1e-6:
            raise ValueError(f"light_dir must be a non-zero vector, got {self.light_dir!r}")
        _range("noise_std", self.noise_std, 0.0, 64.0)
        _range("visibility_margin", self.visibility_margin, 0.0, 10.0)

    @property
    def num_frames(self) -> int:
        """Frames in the sequence: ``round(seconds * fps)`` (>= 1 by validation)."""
        return round(self.seconds * self.fps)

    def stamp_ns(self, index: int) -> int:
        """Stamp of frame ``index`` in nanoseconds: ``start_time_ns + round(index * 1e9 / fps)``."""
        return self.start_time_ns + round(index * 1e9 / self.fps)
