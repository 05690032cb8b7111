"""Typed values that cross component boundaries: frames, cameras, detections, tracks, depth, target state.

All are frozen dataclasses backed by NumPy arrays. Construction validates shapes and dtypes and raises a
``ValueError`` naming the field; arrays are stored as read-only views so a value cannot change after it was checked
(the caller's own array stays writable). Conventions used everywhere:

* boxes are ``[x1, y1, x2, y2]`` in pixels of the camera image, ``x1 <= x2`` and ``y1 <= y2``; pixel centres sit at
  integer coordinates + 0.5, so a box covering columns ``u0..u1`` inclusive is ``[u0, ., u1 + 1, .]``;
* time stamps are integer nanoseconds (``stamp_ns``), the ROS time of the image;
* cameras use the optical frame of REP-103 (x right, y down, z forward); depth is metric z along the optical axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CameraModel",
    "Frame",
    "Detections",
    "Tracks",
    "TrackState",
    "DepthMap",
    "Annotations",
    "TargetState",
]


def _frozen_array(
    owner: str, name: str, value: object, dtype: np.dtype | type, shape: tuple[int | None, ...]
) -> np.ndarray:
    """Check ``value`` is an ndarray of ``dtype`` and ``shape`` (None = any) and return a read-only view of it."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{owner}.{name} must be a numpy array of {np.dtype(dtype)}, got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise ValueError(
            f"{owner}.{name} must have dtype {np.dtype(dtype)}, got {value.dtype} "
            f"(convert with np.asarray(x, np.{np.dtype(dtype).name}))"
        )
    if value.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, value.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{owner}.{name} must have shape {want}, got {value.shape}")
    view = value.view()
    view.flags.writeable = False
    return view


def _check_int(owner: str, name: str, value: object, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A pinhole camera: intrinsics ``K`` and the pose of its optical frame in the world.

    Attributes:
        camera_id: index of the camera in its rig (0-based).
        width, height: image size in pixels.
        K: (3, 3) float64 intrinsic matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels.
        T_world_cam: (4, 4) float64 rigid transform mapping optical-frame points to world points
            (``p_world = R @ p_cam + t``). World frame: z up, metres.
        frame_id: name of the optical frame (``camN_optical``).
        distortion: (5,) float64 plumb-bob coefficients; the synthetic world renders undistorted images (zeros).
    """

    camera_id: int
    width: int
    height: int
    K: np.ndarray
    T_world_cam: np.ndarray
    frame_id: str = ""
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(5))

    def __post_init__(self) -> None:
        _check_int("CameraModel", "camera_id", self.camera_id)
        _check_int("CameraModel", "width", self.width, 1)
        _check_int("CameraModel", "height", self.height, 1)
        _set(self, "K", _frozen_array("CameraModel", "K", self.K, np.float64, (3, 3)))
        _set(self, "T_world_cam", _frozen_array("CameraModel", "T_world_cam", self.T_world_cam, np.float64, (4, 4)))
        _set(self, "distortion", _frozen_array("CameraModel", "distortion", self.distortion, np.float64, (5,)))
        if not (self.K[0, 0] > 0 and self.K[1, 1] > 0):
            raise ValueError(
                f"CameraModel.K must have positive focal lengths, got fx={self.K[0, 0]}, fy={self.K[1, 1]}"
            )
        if not self.frame_id:
            _set(self, "frame_id", f"cam{self.camera_id}_optical")

    @property
    def T_cam_world(self) -> np.ndarray:
        """(4, 4) transform mapping world points into this camera's optical frame."""
        R = self.T_world_cam[:3, :3]
        t = self.T_world_cam[:3, 3]
        out = np.eye(4)
        out[:3, :3] = R.T
        out[:3, 3] = -R.T @ t
        return out


@dataclass(frozen=True, eq=False)
class Frame:
    """One camera image: (H, W, 3) uint8 RGB, its stamp and camera."""

    image: np.ndarray
    camera_id: int
    stamp_ns: int
    frame_id: str = ""

    def __post_init__(self) -> None:
        _set(self, "image", _frozen_array("Frame", "image", self.image, np.uint8, (None, None, 3)))
        _check_int("Frame", "camera_id", self.camera_id)
        _check_int("Frame", "stamp_ns", self.stamp_ns)


class TrackState:
    """Track life-cycle states (values match ``depthtracker_msgs/Track.STATE_*``)."""

    TENTATIVE = 0
    CONFIRMED = 1
    LOST = 2
    REMOVED = 3


def _check_boxes(owner: str, boxes: np.ndarray) -> None:
    if boxes.size and not np.isfinite(boxes).all():
        bad = np.flatnonzero(~np.isfinite(boxes).all(axis=1))
        raise ValueError(f"{owner}.boxes has non-finite values in rows {bad.tolist()}")
    if boxes.size and ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
        bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
        raise ValueError(f"{owner}.boxes has negative width or height in rows {bad.tolist()} (expected x1<=x2, y1<=y2)")


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one camera image.

    Attributes:
        boxes: (N, 4) float32 ``[x1, y1, x2, y2]`` pixels; finite, non-negative size.
        scores: (N,) float32 confidences in [0, 1].
        labels: (N,) int64 class ids.
        camera_id: camera index; stamp_ns: image stamp in nanoseconds.
        sigmas: optional (N, 4) float32 1-sigma uncertainty of each box coordinate in pixels (from the model's
            aleatoric head); trackers scale their measurement noise by it when given.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    camera_id: int
    stamp_ns: int
    sigmas: np.ndarray | None = None

    def __post_init__(self) -> None:
        _set(self, "boxes", _frozen_array("Detections", "boxes", self.boxes, np.float32, (None, 4)))
        n = self.boxes.shape[0]
        _set(self, "scores", _frozen_array("Detections", "scores", self.scores, np.float32, (n,)))
        _set(self, "labels", _frozen_array("Detections", "labels", self.labels, np.int64, (n,)))
        if self.sigmas is not None:
            _set(self, "sigmas", _frozen_array("Detections", "sigmas", self.sigmas, np.float32, (n, 4)))
            if n and (~np.isfinite(self.sigmas) | (self.sigmas < 0)).any():
                raise ValueError("Detections.sigmas must be finite and >= 0")
        _check_int("Detections", "camera_id", self.camera_id)
        _check_int("Detections", "stamp_ns", self.stamp_ns)
        _check_boxes("Detections", self.boxes)
        if n and not np.isfinite(self.scores).all():
            raise ValueError(f"Detections.scores has non-finite values in rows "
                             f"{np.flatnonzero(~np.isfinite(self.scores)).tolist()}")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls, camera_id: int, stamp_ns: int) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), camera_id, stamp_ns)

    def select(self, mask: np.ndarray) -> Detections:
        """The detections where ``mask`` (bool (N,) or index array) holds."""
        return Detections(self.boxes[mask], self.scores[mask], self.labels[mask], self.camera_id, self.stamp_ns,
                          None if self.sigmas is None else self.sigmas[mask])


@dataclass(frozen=True, eq=False)
class Tracks:
    """Tracks of one camera at one time.

    Attributes:
        ids: (M,) int64 track ids, unique per camera (namespaced by camera, see ``tracking.mot``).
        boxes: (M, 4) float32 ``[x1, y1, x2, y2]`` pixels.
        velocities: (M, 4) float32 d/dt of the box coordinates, pixels per second.
        scores: (M,) float32; labels: (M,) int64; states: (M,) int8 ``TrackState`` values.
        camera_id, stamp_ns: as for ``Detections``.
        depths: optional (M,) float32 median depth in metres (NaN = unknown).
        is_target: optional (M,) bool, true for the single target.
        ages: optional (M,) int64 frames of the track's camera stream since its birth, the birth frame counted.
        hits: optional (M,) int64 frames in which it was matched to a detection (its birth included), <= ages.
    """

    ids: np.ndarray
    boxes: np.ndarray
    velocities: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    states: np.ndarray
    camera_id: int
    stamp_ns: int
    depths: np.ndarray | None = None
    is_target: np.ndarray | None = None
    ages: np.ndarray | None = None
    hits: np.ndarray | None = None

    def __post_init__(self) -> None:
        _set(self, "ids", _frozen_array("Tracks", "ids", self.ids, np.int64, (None,)))
        m = self.ids.shape[0]
        _set(self, "boxes", _frozen_array("Tracks", "boxes", self.boxes, np.float32, (m, 4)))
        _set(self, "velocities", _frozen_array("Tracks", "velocities", self.velocities, np.float32, (m, 4)))
        _set(self, "scores", _frozen_array("Tracks", "scores", self.scores, np.float32, (m,)))
        _set(self, "labels", _frozen_array("Tracks", "labels", self.labels, np.int64, (m,)))
        _set(self, "states", _frozen_array("Tracks", "states", self.states, np.int8, (m,)))
        if self.depths is not None:
            _set(self, "depths", _frozen_array("Tracks", "depths", self.depths, np.float32, (m,)))
        if self.is_target is not None:
            _set(self, "is_target", _frozen_array("Tracks", "is_target", self.is_target, np.bool_, (m,)))
        for name in ("ages", "hits"):
            if getattr(self, name) is not None:
                _set(self, name, _frozen_array("Tracks", name, getattr(self, name), np.int64, (m,)))
        _check_int("Tracks", "camera_id", self.camera_id)
        _check_int("Tracks", "stamp_ns", self.stamp_ns)
        _check_boxes("Tracks", self.boxes)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def empty(cls, camera_id: int, stamp_ns: int) -> Tracks:
        z4 = np.zeros((0, 4), np.float32)
        return cls(np.zeros(0, np.int64), z4, z4.copy(), np.zeros(0, np.float32), np.zeros(0, np.int64),
                   np.zeros(0, np.int8), camera_id, stamp_ns)


@dataclass(frozen=True, eq=False)
class Annotations:
    """Ground-truth objects of one camera image (what the synthetic world and dataset readers produce).

    Attributes:
        ids: (K,) int64 global object ids (the same object has the same id in every camera).
        boxes: (K, 4) float32 tight ``[x1, y1, x2, y2]`` bounds of the object's visible pixels.
        labels: (K,) int64 class ids.
        visibility: (K,) float32 visible fraction in (0, 1] (occlusion and image border both count).
    """

    ids: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    visibility: np.ndarray
    camera_id: int
    stamp_ns: int

    def __post_init__(self) -> None:
        _set(self, "ids", _frozen_array("Annotations", "ids", self.ids, np.int64, (None,)))
        k = self.ids.shape[0]
        _set(self, "boxes", _frozen_array("Annotations", "boxes", self.boxes, np.float32, (k, 4)))
        _set(self, "labels", _frozen_array("Annotations", "labels", self.labels, np.int64, (k,)))
        _set(self, "visibility", _frozen_array("Annotations", "visibility", self.visibility, np.float32, (k,)))
        _check_int("Annotations", "camera_id", self.camera_id)
        _check_int("Annotations", "stamp_ns", self.stamp_ns)
        _check_boxes("Annotations", self.boxes)

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True, eq=False)
class DepthMap:
    """Metric depth of one camera image: (H, W) float32 metres along the optical axis, NaN = unknown."""

    depth: np.ndarray
    camera_id: int
    stamp_ns: int

    def __post_init__(self) -> None:
        _set(self, "depth", _frozen_array("DepthMap", "depth", self.depth, np.float32, (None, None)))
        _check_int("DepthMap", "camera_id", self.camera_id)
        _check_int("DepthMap", "stamp_ns", self.stamp_ns)


@dataclass(frozen=True, eq=False)
class TargetState:
    """State of the single target after an update.

    Attributes:
        box: (4,) float32 ``[x1, y1, x2, y2]`` pixels (the Kalman-filtered box while tracking).
        velocity: (4,) float32 pixels per second.
        score: confidence of the selected candidate (0 when none was accepted this frame).
        tracking: true while the target is held; false once it was lost for longer than the tracker allows.
        occluded: true when no candidate passed the gates this frame (the box is then the motion prediction).
    """

    box: np.ndarray
    velocity: np.ndarray
    score: float
    camera_id: int
    stamp_ns: int
    tracking: bool = True
    occluded: bool = False

    def __post_init__(self) -> None:
        _set(self, "box", _frozen_array("TargetState", "box", self.box, np.float32, (4,)))
        _set(self, "velocity", _frozen_array("TargetState", "velocity", self.velocity, np.float32, (4,)))
        _check_int("TargetState", "camera_id", self.camera_id)
        _check_int("TargetState", "stamp_ns", self.stamp_ns)
        if not np.isfinite(self.box).all():
            raise ValueError(f"TargetState.box must be finite, got {self.box.tolist()}")
