"""Camera poses (extrinsics) for consumers that cannot read ``/tf_static``: a rig YAML file, the synthetic rig, or
what ``CameraInfo`` alone tells (the stereo baseline).

A rig file maps optical frame ids to ``T_world_cam`` (``p_world = R @ p_cam + t``), rotation as a quaternion::

    cam0_optical: {translation: [x, y, z], rotation: [qx, qy, qz, qw]}   # metres; unit quaternion
    cam1_optical: {translation: [...], rotation: [...]}

It holds what a ``static_transform_publisher`` line would (``tf2`` is not installable from PyPI, so the perception
node cannot listen to ``/tf_static`` here); ``write_rig_file`` writes one from ``CameraModel`` poses (for example the
cameras of a recorded bag). Models only use poses relative to camera 0 of a set.

``poses_for(spec, ...)`` resolves the perception node's ``extrinsics`` parameter:

* ``camera_info`` — camera 0 at the origin, every camera with the same orientation; a camera whose ``CameraInfo`` has
  ``P[0, 3] = -fx * baseline`` (the right camera of a rectified stereo pair) sits ``baseline`` along x;
* ``synth`` or ``synth:FILE`` — the rig of the synthetic world (``config/synth.yaml`` or FILE);
* any other value — a rig file as above; a camera missing from it is an error naming the frame and the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from depthtracker.configio import load_yaml
from depthtracker.geometry.rotations import matrix_to_quaternion, quaternion_to_matrix
from depthtracker.types import CameraModel

__all__ = ["load_rig_file", "rig_file_text", "write_rig_file", "poses_for", "stereo_offset_pose"]


def load_rig_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """frame_id -> (4, 4) ``T_world_cam`` from a rig YAML file (``ValueError`` naming the file and the entry)."""
    p = Path(path)
    data = load_yaml(p)  # ValueError naming the file when unreadable, not YAML, or not a mapping
    if not data:
        raise ValueError(f"rig file {p} must map frame ids to {{translation: [x, y, z], rotation: [qx, qy, qz, qw]}}")
    out = {}
    for frame, entry in data.items():
        try:
            t = np.asarray(entry["translation"], np.float64).reshape(3)
            q = np.asarray(entry["rotation"], np.float64).reshape(4)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"rig file {p}, entry {frame!r}: needs translation [x, y, z] and rotation "
                             f"[qx, qy, qz, qw] ({exc})") from exc
        if not (np.isfinite(t).all() and np.isfinite(q).all()) or abs(np.linalg.norm(q) - 1.0) > 1e-3:
            raise ValueError(f"rig file {p}, entry {frame!r}: translation must be finite and rotation a unit "
                             f"quaternion, got {t.tolist()}, {q.tolist()}")
        T = np.eye(4)
        T[:3, :3] = quaternion_to_matrix(q / np.linalg.norm(q))
        T[:3, 3] = t
        out[str(frame)] = T
    return out


def rig_file_text(cameras: Sequence[CameraModel]) -> str:
    """The rig file (YAML text) holding the poses of ``cameras``."""
    data = {}
    for cam in cameras:
        q = matrix_to_quaternion(cam.T_world_cam[:3, :3])
        data[cam.frame_id] = {"translation": [float(v) for v in cam.T_world_cam[:3, 3]],
                              "rotation": [float(v) for v in q]}
    return ("# T_world_cam per optical frame: translation metres, rotation quaternion [x, y, z, w]\n"
            + yaml.safe_dump(data, sort_keys=True))


def write_rig_file(path: str | os.PathLike[str], cameras: Sequence[CameraModel]) -> Path:
    """Write the poses of ``cameras`` as a rig file; returns its path."""
    p = Path(path)
    p.write_text(rig_file_text(cameras))
    return p


def stereo_offset_pose(P: np.ndarray) -> np.ndarray:
    """Pose relative to the left camera implied by a CameraInfo ``P`` (3, 4): ``tx = -fx * baseline``."""
    P = np.asarray(P, np.float64).reshape(3, 4)
    T = np.eye(4)
    if P[0, 0] > 0 and P[0, 3] != 0.0:
        T[0, 3] = -P[0, 3] / P[0, 0]
    return T


def poses_for(spec: str, frame_ids: Sequence[str], projections: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``T_world_cam`` of each camera (see the module docstring); ``projections``: each camera's CameraInfo P."""
    if len(frame_ids) != len(projections):
        raise ValueError(f"poses_for: {len(frame_ids)} frame ids but {len(projections)} projections")
    if spec == "camera_info":
        return [stereo_offset_pose(P) for P in projections]
    if spec == "synth" or spec.startswith("synth:"):
        from depthtracker.configio import load_config
        from depthtracker.data.synth import SynthConfig
        from depthtracker.data.synth.rig import build_rig

        path = spec.partition(":")[2] or None
        cfg = load_config(SynthConfig, path, name="synth")
        rig = {c.frame_id: c.T_world_cam for c in build_rig(cfg)[0]}
        where = f"the synthetic rig ({path or 'config/synth.yaml'}, {cfg.cameras} cameras)"
    else:
        rig = load_rig_file(spec)
        where = f"rig file {spec}"
    missing = [f for f in frame_ids if f not in rig]
    if missing:
        raise ValueError(f"extrinsics: {where} has no pose for frame(s) {missing} (it has {sorted(rig)}); set the "
                         "parameter extrinsics to a rig file that lists them, or to camera_info")
    return [np.asarray(rig[f], np.float64) for f in frame_ids]
