"""Camera calibration files (the ROS ``camera_info`` YAML of camera_calibration) and the default pinhole camera.

The YAML layout is the one ``camera_calibration`` writes and ``camera_info_manager`` reads::

    image_width: 640
    image_height: 480
    camera_name: front
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, t1, t2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [...]}   # optional, identity by default
    projection_matrix: {rows: 3, cols: 4, data: [...]}      # optional, [K | 0] by default

``CameraCalibration.info_fields()`` gives the ``CameraInfo`` fields (as ``camera_info.camera_info_fields`` does for
a ``CameraModel``), so the node publishes the file's R and P unchanged.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from depthtracker.types import CameraModel

__all__ = ["CameraCalibration", "CalibrationError", "load_calibration", "pinhole_calibration",
           "read_camera_info_yaml", "stereo_rig"]


class CalibrationError(ValueError):
    """A calibration file cannot be used; the message names the file and the key."""


@dataclass(frozen=True, eq=False)
class CameraCalibration:
    """Intrinsics of one camera as in ``sensor_msgs/CameraInfo``: K (3, 3), D (n,), R (3, 3), P (3, 4), pixels."""

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray
    distortion_model: str = "plumb_bob"
    camera_name: str = ""

    def info_fields(self) -> dict[str, Any]:
        """``CameraInfo`` fields (no header): height, width, distortion_model, d, k, r, p as flat float64 arrays."""
        return {"height": self.height, "width": self.width, "distortion_model": self.distortion_model,
                "d": self.D.astype(np.float64).copy(), "k": self.K.reshape(-1).astype(np.float64),
                "r": self.R.reshape(-1).astype(np.float64), "p": self.P.reshape(-1).astype(np.float64)}

    def camera_model(self, camera_id: int, frame_id: str = "") -> CameraModel:
        """The ``CameraModel`` (pose: identity; the first 5 distortion coefficients, plumb-bob order)."""
        d = np.zeros(5)
        d[: min(5, self.D.size)] = self.D[:5]
        return CameraModel(camera_id, self.width, self.height, self.K.astype(np.float64).copy(), np.eye(4),
                           frame_id, d)

    @property
    def camera(self) -> CameraModel:
        """``camera_model(0)``: the camera alone (id 0, identity pose)."""
        return self.camera_model(0)


def _matrix(data: dict, key: str, shape: tuple[int, int], source: str) -> np.ndarray:
    m = data.get(key)
    if not isinstance(m, dict) or "data" not in m:
        raise CalibrationError(f"{source}: {key} must be a mapping with rows, cols and data")
    try:
        arr = np.asarray(m["data"], np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{source}: {key}.data must be numbers") from exc
    rows, cols = m.get("rows", shape[0]), m.get("cols", shape[1])
    if key == "distortion_coefficients":
        if arr.ndim != 1 or arr.size != rows * cols:
            raise CalibrationError(f"{source}: {key} has {arr.size} values, rows x cols = {rows} x {cols}")
        return arr
    if (rows, cols) != shape or arr.size != shape[0] * shape[1]:
        raise CalibrationError(f"{source}: {key} must be {shape[0]}x{shape[1]}, got rows={rows} cols={cols} "
                               f"with {arr.size} values")
    if not np.isfinite(arr).all():
        raise CalibrationError(f"{source}: {key} has non-finite values")
    return arr.reshape(shape)


def load_calibration(path: str | os.PathLike[str]) -> CameraCalibration:
    """Read a ROS camera_info YAML file (module docstring); ``CalibrationError`` names the file and the problem."""
    path = Path(path)
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CalibrationError(f"cannot read calibration file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CalibrationError(f"calibration file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: expected a mapping (camera_info YAML), got {type(data).__name__}")
    for key in ("image_width", "image_height"):
        v = data.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise CalibrationError(f"{source}: {key} must be a positive integer, got {v!r}")
    K = _matrix(data, "camera_matrix", (3, 3), source)
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise CalibrationError(f"{source}: camera_matrix must have positive focal lengths, got {K[0, 0]}, {K[1, 1]}")
    D = _matrix(data, "distortion_coefficients", (1, 5), source) if "distortion_coefficients" in data \
        else np.zeros(5)
    R = _matrix(data, "rectification_matrix", (3, 3), source) if "rectification_matrix" in data else np.eye(3)
    if "projection_matrix" in data:
        P = _matrix(data, "projection_matrix", (3, 4), source)
    else:
        P = np.zeros((3, 4))
        P[:, :3] = K
    model = data.get("distortion_model", "plumb_bob")
    if not isinstance(model, str):
        raise CalibrationError(f"{source}: distortion_model must be a string, got {model!r}")
    return CameraCalibration(int(data["image_width"]), int(data["image_height"]), K, D, R, P, model,
                             str(data.get("camera_name", "")))


def pinhole_calibration(width: int, height: int, hfov_deg: float) -> CameraCalibration:
    """An undistorted pinhole camera with square pixels, principal point at the image centre and horizontal field
    of view ``hfov_deg`` in (0, 180): ``fx = fy = (width / 2) / tan(hfov / 2)``."""
    if not 0.0 < hfov_deg < 180.0:
        raise CalibrationError(f"hfov_deg must be in (0, 180), got {hfov_deg}")
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2)
    K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    P = np.zeros((3, 4))
    P[:, :3] = K
    return CameraCalibration(int(width), int(height), K, np.zeros(5), np.eye(3), P)


def read_camera_info_yaml(path: str | os.PathLike[str]) -> CameraCalibration:
    """Alias of ``load_calibration`` under the name of the file format."""
    return load_calibration(path)


def stereo_rig(left: CameraCalibration, right: CameraCalibration,
               rtol: float = 1e-6) -> tuple[CameraModel, CameraModel] | None:
    """The two cameras of a rectified stereo pair, or ``None`` when the calibrations are not one.

    A pair is rectified when both share K (to ``rtol``) and image size, both R are the identity, the left
    ``P[0, 3]`` is 0 and the right ``P[0, 3] = -fx * baseline`` with ``baseline > 0`` (the CameraInfo convention).
    The left camera sits at the origin (optical frame = rig frame); the right one ``baseline`` metres along +x.
    """
    if (left.width, left.height) != (right.width, right.height):
        return None
    if not np.allclose(left.K, right.K, rtol=rtol) or not (np.allclose(left.R, np.eye(3)) and
                                                            np.allclose(right.R, np.eye(3))):
        return None
    fx = float(right.P[0, 0]) or float(right.K[0, 0])
    baseline = -float(right.P[0, 3]) / fx
    if abs(float(left.P[0, 3])) > 1e-9 or not baseline > 0:
        return None
    T = np.eye(4)
    T[0, 3] = baseline
    r = right.camera_model(1)
    return left.camera_model(0), CameraModel(1, r.width, r.height, r.K.copy(), T, r.frame_id, r.distortion.copy())
