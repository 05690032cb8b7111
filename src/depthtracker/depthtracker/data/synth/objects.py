"""Object classes of the synthetic world: shapes, exact ray intersections and textures.

Every object stands on the floor and turns about the vertical axis only, so its local frame is the world frame
rotated by its yaw about z and translated to its centre. Shapes (local frame, half extents ``(a, b, c)``):

* ``box``      the cuboid ``|x| <= a, |y| <= b, |z| <= c`` (slab test); texture: 3 x 3 checkerboard per face,
  object colour and off-white;
* ``sphere``   radius ``a = b = c`` (ray-sphere quadric); texture: 8 longitude gores, object colour and a dark shade
  of it (they turn with the yaw, so spin is visible);
* ``cylinder`` upright, radius ``a = b``, half height ``c``, with both caps (ray-cylinder quadric + cap planes);
  texture: 5 horizontal rings on the side and 3 concentric rings on the caps, object colour and a light tint.

Intersections take the ray origin in the local frame and local direction components (any equal shapes), and return
the ray parameter ``t`` of the first hit in front of the origin (``inf`` where the ray misses). The origin must lie
outside the object (the cameras are above every object, so it does). With directions scaled to optical z = 1 the
parameter ``t`` is the depth.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

__all__ = ["CLASS_NAMES", "BOX", "SPHERE", "CYLINDER", "ObjectSpec", "intersect", "surface"]

CLASS_NAMES: tuple[str, ...] = ("box", "sphere", "cylinder")
BOX, SPHERE, CYLINDER = 0, 1, 2


@dataclass(frozen=True)
class ObjectSpec:
    """A moving object's fixed properties.

    Attributes:
        object_id: global id, >= 1 (0 is the background in instance images).
        label: class index into ``CLASS_NAMES``.
        half_extents: local half sizes ``(a, b, c)`` in metres along local x, y, z (see the module docstring).
        colour: base RGB in [0, 1].
    """

    object_id: int
    label: int
    half_extents: tuple[float, float, float]
    colour: tuple[float, float, float]

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.label]

    @property
    def radius_xy(self) -> float:
        """Radius of the object's footprint's bounding circle, m (used for bounces)."""
        a, b, _ = self.half_extents
        return float(np.hypot(a, b)) if self.label == BOX else float(a)


def sample_objects(num: int, size_range: tuple[float, float], rng: np.random.Generator) -> tuple[ObjectSpec, ...]:
    """``num`` objects with balanced classes (shuffled), sizes whose largest extent is uniform in ``size_range``,
    and saturated random colours."""
    labels = rng.permutation(np.arange(num) % len(CLASS_NAMES))
    out = []
    for k, label in enumerate(labels.tolist()):
        s = 0.5 * rng.uniform(*size_range)  # half of the largest extent
        if label == BOX:
            shares = rng.uniform(0.5, 1.0, size=3)
            shares[rng.integers(3)] = 1.0
            half = tuple(float(s * f) for f in shares)
        elif label == SPHERE:
            half = (s, s, s)
        else:
            r = s * rng.uniform(0.5, 1.0)
            half = (r, r, s)
        colour = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0))
        out.append(ObjectSpec(object_id=k + 1, label=int(label), half_extents=half, colour=colour))
    return tuple(out)


def _quadric_near(b: np.ndarray, a: np.ndarray, c: float) -> np.ndarray:
    """Near root of ``a t^2 + 2 b t + c = 0`` where real, else NaN (a > 0)."""
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        return (-b - np.sqrt(disc)) / a  # NaN where disc < 0


def intersect(spec: ObjectSpec, o: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Ray parameter of the first hit of rays ``o + t d`` (local frame) with the object; ``inf`` = miss."""
    a, b, c = spec.half_extents
    ox, oy, oz = (float(v) for v in o)
    with np.errstate(invalid="ignore", divide="ignore"):
        if spec.label == SPHERE:
            b_half = ox * dx + oy * dy + oz * dz
            t = _quadric_near(b_half, dx * dx + dy * dy + dz * dz, ox * ox + oy * oy + oz * oz - a * a)
            return np.where(t > 0, t, np.inf)  # NaN > 0 is False
        if spec.label == BOX:
            near = np.full(dx.shape, -np.inf)
            far = np.full(dx.shape, np.inf)
            for oc, dc, h in ((ox, dx, a), (oy, dy, b), (oz, dz, c)):
                inv = 1.0 / dc
                t1 = (-h - oc) * inv
                t2 = (h - oc) * inv
                np.maximum(near, np.minimum(t1, t2), out=near)
                np.minimum(far, np.maximum(t1, t2), out=far)
            return np.where((near <= far) & (near > 0), near, np.inf)
        # cylinder: side (near root, on the finite height) and the two caps; the first positive valid hit wins
        t = _quadric_near(ox * dx + oy * dy, dx * dx + dy * dy, ox * ox + oy * oy - a * a)
        best = np.where((t > 0) & (np.abs(oz + t * dz) <= c), t, np.inf)
        for zc in (c, -c):
            tc = (zc - oz) / dz
            px = ox + tc * dx
            py = oy + tc * dy
            ok = (tc > 0) & (px * px + py * py <= a * a) & (tc < best)
            best = np.where(ok, tc, best)
        return best


def surface(spec: ObjectSpec, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Albedo (N, 3) in [0, 1] and unit local normal (N, 3) at local surface points ``q`` (N, 3)."""
    a, b, c = spec.half_extents
    base = np.asarray(spec.colour, np.float64)
    n = np.zeros_like(q)
    if spec.label == BOX:
        h = np.array([a, b, c])
        axis = np.argmin(h - np.abs(q), axis=1)  # the face the point lies on: nearest to its plane
        rows = np.arange(q.shape[0])
        n[rows, axis] = np.sign(q[rows, axis])
        cells = np.clip(np.floor((q / h + 1.0) * 1.5), 0, 2).astype(np.int64)  # 3 cells per face edge
        odd = (cells.sum(axis=1) & 1).astype(bool)
        albedo = np.where(odd[:, None], base, 0.92)
    elif spec.label == SPHERE:
        n = q / a
        gore = np.floor((np.arctan2(q[:, 1], q[:, 0]) + np.pi) * (8 / (2 * np.pi))).astype(np.int64)
        albedo = np.where((gore & 1).astype(bool)[:, None], base, 0.3 * base)
    else:
        rho = np.hypot(q[:, 0], q[:, 1])
        cap = (c - np.abs(q[:, 2])) < (a - rho)  # nearer to a cap plane than to the side
        n[:, 2] = np.where(cap, np.sign(q[:, 2]), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            side = ~cap
            n[side, 0] = q[side, 0] / rho[side]
            n[side, 1] = q[side, 1] / rho[side]
        ring = np.where(cap, np.floor(rho / a * 3.0), np.floor((q[:, 2] + c) / (2 * c) * 5.0)).astype(np.int64)
        albedo = np.where((ring & 1).astype(bool)[:, None], base, 0.5 + 0.5 * base)
    return albedo, n


def local_corners(spec: ObjectSpec) -> np.ndarray:
    """(8, 3) corners of the object's local bounding box (the box itself for boxes)."""
    h = np.asarray(spec.half_extents, np.float64)
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
    return signs * h
