"""The static camera rig of the synthetic world: a rectified stereo pair plus cameras round the room.

Cameras stand on ``M = max(1, N - 1)`` stations spread evenly on an ellipse at ``ring_fraction`` of the room's half
extents, at ``camera_height_m``, each looking at the room centre at ``look_at_height_m``. Station 0 (at the -x end,
looking along +x) holds the stereo pair: camera 0 (left) and camera 1 (right) share K and orientation and sit
``stereo_baseline_m`` apart along camera 0's x axis, centred on the station, so their images are rectified by
construction. Cameras 2..N-1 take stations 1..M-1, so every camera looks in a different direction and the views
overlap in the middle of the room while the corners near each camera stay out of its view.
"""

from __future__ import annotations

import math

import numpy as np

from depthtracker.data.synth.config import SynthConfig
from depthtracker.geometry.camera import intrinsics_from_fov, look_at
from depthtracker.types import CameraModel

__all__ = ["build_rig"]


def build_rig(cfg: SynthConfig) -> tuple[list[CameraModel], tuple[int, int] | None]:
    """The cameras (ids 0..N-1, frames ``camN_optical``) and the stereo pair ``(left, right)``, None if N == 1."""
    L, W, _ = cfg.room_size_m
    K = intrinsics_from_fov(cfg.width, cfg.height, cfg.hfov_deg)
    stations = max(1, cfg.cameras - 1)
    target = np.array([0.0, 0.0, cfg.look_at_height_m])
    poses: list[np.ndarray] = []
    for k in range(stations):
        phi = math.pi + 2.0 * math.pi * k / stations  # station 0 at the -x end of the room
        eye = np.array([0.5 * L * cfg.ring_fraction * math.cos(phi), 0.5 * W * cfg.ring_fraction * math.sin(phi),
                        cfg.camera_height_m])
        T = look_at(eye, target)
        if k == 0 and cfg.cameras >= 2:
            half = 0.5 * cfg.stereo_baseline_m * T[:3, 0]  # along the left camera's x axis (image right)
            left, right = T.copy(), T.copy()
            left[:3, 3] = eye - half
            right[:3, 3] = eye + half
            poses += [left, right]
        else:
            poses.append(T)
    cameras = [CameraModel(camera_id=i, width=cfg.width, height=cfg.height, K=K.copy(), T_world_cam=T,
                           frame_id=f"cam{i}_optical") for i, T in enumerate(poses)]
    return cameras, ((0, 1) if cfg.cameras >= 2 else None)
