"""What both paths of ``bench/graph.py`` play and how they summarise it: the synthetic sets, the order they loop
in, per-set statistics in milliseconds and the figure format of the printed tables.

Kept apart from ``graph.py`` (CLI, in-process path, report) and ``graph_ros.py`` (ROS transport path) so that both
import it without importing each other.
"""

from __future__ import annotations

import numpy as np
from depthtracker.data.synth import SynthConfig, SynthWorld


def render_sets(cameras: int, width: int, height: int, loop_sets: int, seed: int):
    """``loop_sets`` rendered sets of the synthetic rig, RGB (H, W, 3) uint8 per camera, and the rig's cameras."""
    fps = SynthConfig().fps
    world = SynthWorld(SynthConfig(cameras=cameras, width=width, height=height, seed=seed, seconds=loop_sets / fps))
    sets = [[f.image for f in world.render(k).frames] for k in range(loop_sets)]
    return sets, list(world.cameras)


def ping_pong(n: int) -> list[int]:
    """0 .. n-1 .. 1: the play order that loops without a jump."""
    return list(range(n)) + list(range(n - 2, 0, -1)) if n > 1 else [0]


def stats_ms(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(values, np.float64)
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()), "mean": float(a.mean())}


def fmt(v: float | None, spec: str = ".1f") -> str:
    """``v`` in ``spec``, or "-" when there is none (a percentile of no values)."""
    return "-" if v is None else format(v, spec)
