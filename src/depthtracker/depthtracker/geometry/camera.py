"""Pinhole camera helpers: intrinsics, poses, pixel rays and projection.

Optical frame (REP-103): x right, y down, z forward. World frame: x forward, y left, z up, metres.
Pixel centres are at integer coordinates + 0.5 (pixel (u, v) spans [u, u+1) x [v, v+1)).
"""

from __future__ import annotations

import math

import numpy as np


def intrinsics_from_fov(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """(3, 3) float64 K with square pixels, principal point at the image centre and horizontal FOV ``hfov_deg``."""
    if not 1.0 <= hfov_deg <= 170.0:
        raise ValueError(f"hfov_deg must be in [1, 170], got {hfov_deg}")
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) T_world_cam for an optical frame at ``eye`` whose z axis points at ``target`` (world z is up)."""
    eye = np.asarray(eye, np.float64)
    z = np.asarray(target, np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, np.float64))
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to 'up'")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # optical y points down in the image
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def pixel_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float64 optical-frame ray directions through pixel centres, scaled so that z = 1.

    With z = 1, the distance ``t`` along a ray to a point equals that point's depth (optical z).
    """
    u = np.arange(width) + 0.5
    v = np.arange(height) + 0.5
    uu, vv = np.meshgrid(u, v)  # (H, W) each
    x = (uu - K[0, 2]) / K[0, 0]
    y = (vv - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def project_points(K: np.ndarray, T_cam_world: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, 3) world points: returns (N, 2) pixel coordinates and (N,) depths (optical z, metres).

    Points behind the camera get a negative or zero depth; their pixel coordinates are meaningless.
    """
    p = np.asarray(points, np.float64).reshape(-1, 3)
    pc = p @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]  # (N, 3) optical frame
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (pc[:, :2] / z[:, None]) * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
    return uv, z
