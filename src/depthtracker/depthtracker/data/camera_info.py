"""CameraModel <-> sensor_msgs/CameraInfo fields, shared by the bag writer (rosbags types) and the ROS nodes.

Only plain field values cross this boundary (lists and floats), so both rosbags' message classes and rclpy's accept
them without this module importing either.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depthtracker.types import CameraModel


def camera_info_fields(camera: CameraModel, tx: float = 0.0) -> dict[str, Any]:
    """The ``CameraInfo`` fields of ``camera`` (no header).

    ``tx`` is ``P[0, 3]`` in pixels·metres: 0 for a monocular or left camera, ``-fx * baseline`` for the right camera
    of a rectified stereo pair (the CameraInfo convention, so stereo consumers recover the baseline).
    """
    K = np.asarray(camera.K, np.float64)
    P = np.zeros((3, 4))
    P[:, :3] = K
    P[0, 3] = tx
    return {
        "height": int(camera.height),
        "width": int(camera.width),
        "distortion_model": "plumb_bob",
        "d": np.asarray(camera.distortion, np.float64).copy(),
        "k": K.reshape(-1).copy(),
        "r": np.eye(3).reshape(-1),
        "p": P.reshape(-1),
    }


def camera_from_info(
    info: Any, camera_id: int, T_world_cam: np.ndarray | None = None, frame_id: str = ""
) -> CameraModel:
    """Rebuild a ``CameraModel`` from a CameraInfo-like object (attributes ``height, width, k, d``).

    CameraInfo carries no pose: pass ``T_world_cam`` (from ``/tf_static``) or get the identity.
    """
    d = np.zeros(5)
    dd = np.asarray(info.d, np.float64).reshape(-1)
    d[: min(5, dd.size)] = dd[:5]
    return CameraModel(
        camera_id=camera_id,
        width=int(info.width),
        height=int(info.height),
        K=np.asarray(info.k, np.float64).reshape(3, 3).copy(),
        T_world_cam=np.eye(4) if T_world_cam is None else np.asarray(T_world_cam, np.float64),
        frame_id=frame_id,
        distortion=d,
    )
