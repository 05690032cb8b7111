"""Core types <-> ROS messages (rclpy classes). Thin: the math lives in the core.

Images: fill ``Image.data`` with ``bytes`` (fast in rclpy) and read it back as a zero-copy NumPy view
(``depthtracker.data.images``); never a NumPy array or a list, which rclpy converts element by element.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from depthtracker.data.camera_info import camera_info_fields
from depthtracker.data.images import array_to_image_fields
from depthtracker.types import CameraModel, Detections, Tracks
from depthtracker_msgs.msg import Track, TrackArray


def stamp_to_msg(stamp_ns: int) -> Time:
    return Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))


def stamp_from_msg(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=stamp_to_msg(stamp_ns), frame_id=frame_id)


def image_msg(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Image:
    fields = array_to_image_fields(array, encoding)
    msg = Image(header=header(stamp_ns, frame_id))
    msg.height, msg.width, msg.encoding = fields["height"], fields["width"], fields["encoding"]
    msg.is_bigendian, msg.step = fields["is_bigendian"], fields["step"]
    msg.data = fields["data"]  # bytes: the fast path in rclpy
    return msg


def camera_info_msg(camera: CameraModel, stamp_ns: int, tx: float = 0.0) -> CameraInfo:
    """``CameraInfo`` of ``camera`` (``tx`` = ``P[0, 3]``, see ``camera_info_fields``)."""
    return camera_info_msg_from_fields(camera_info_fields(camera, tx), stamp_ns, camera.frame_id)


def tracks_to_msg(tracks: Tracks, frame_id: str) -> TrackArray:
    """One camera's ``Tracks`` -> ``TrackArray`` stamped with the image stamp and that camera's frame."""
    out = TrackArray(header=header(tracks.stamp_ns, frame_id))
    depths = tracks.depths if tracks.depths is not None else np.full(len(tracks), np.nan, np.float32)
    target = tracks.is_target if tracks.is_target is not None else np.zeros(len(tracks), bool)
    ages = tracks.ages if tracks.ages is not None else np.zeros(len(tracks), np.int64)  # 0 = unknown
    hits = tracks.hits if tracks.hits is not None else np.zeros(len(tracks), np.int64)
    for k in range(len(tracks)):
        t = Track()
        t.id = int(tracks.ids[k])
        t.camera_id = int(tracks.camera_id)
        t.frame_id = frame_id
        t.box = tracks.boxes[k].tolist()
        t.velocity = tracks.velocities[k].tolist()
        t.class_id = int(tracks.labels[k])
        t.score = float(tracks.scores[k])
        t.state = int(tracks.states[k])
        t.depth = float(depths[k])
        t.visibility = float("nan")
        t.is_target = bool(target[k])
        t.age = int(ages[k])
        t.hits = int(hits[k])
        out.tracks.append(t)
    return out


def tracks_from_msg(msg: TrackArray, camera_id: int | None = None) -> Tracks:
    """``TrackArray`` -> ``Tracks`` of one camera (``camera_id``: keep that camera's tracks; default the first's)."""
    tr = list(msg.tracks)
    if camera_id is None:
        camera_id = int(tr[0].camera_id) if tr else 0
    tr = [t for t in tr if int(t.camera_id) == camera_id]
    return Tracks(
        ids=np.array([t.id for t in tr], np.int64),
        boxes=np.array([t.box for t in tr], np.float32).reshape(-1, 4),
        velocities=np.array([t.velocity for t in tr], np.float32).reshape(-1, 4),
        scores=np.array([t.score for t in tr], np.float32),
        labels=np.array([t.class_id for t in tr], np.int64),
        states=np.array([t.state for t in tr], np.int8),
        camera_id=camera_id,
        stamp_ns=stamp_from_msg(msg.header.stamp),
        depths=np.array([t.depth for t in tr], np.float32),
        is_target=np.array([t.is_target for t in tr], bool),
        ages=np.array([t.age for t in tr], np.int64),
        hits=np.array([t.hits for t in tr], np.int64),
    )


def detections_from_msgs(dets: list, camera_id: int, stamp_ns: int) -> Detections:
    """``depthtracker_msgs/Detection`` messages of one camera -> ``Detections`` (sigmas only when any is non-zero).

    Raises ``ValueError`` (from ``Detections``) for non-finite or inverted boxes: the caller counts and skips.
    """
    n = len(dets)
    boxes = np.array([d.box for d in dets], np.float32).reshape(n, 4)
    sigmas = np.array([d.box_sigma for d in dets], np.float32).reshape(n, 4)
    return Detections(
        boxes=boxes,
        scores=np.array([d.score for d in dets], np.float32),
        labels=np.array([d.class_id for d in dets], np.int64),
        camera_id=int(camera_id),
        stamp_ns=int(stamp_ns),
        sigmas=sigmas if n and sigmas.any() else None,
    )


def diagnostic_status(name: str, level: int, message: str, hardware_id: str, values: dict[str, object]):
    """A ``diagnostic_msgs/DiagnosticStatus`` with ``values`` as key/value strings (a list or tuple as ``0,1,2``)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=str(k), value=",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
                     for k, v in values.items()]
    return status


def node_diagnostics(msg: Any, kinds: tuple[str, ...] = ("perception", "tracking")) -> dict[str, dict[str, str]]:
    """The key/value strings of each status in a ``DiagnosticArray`` that one of our nodes published, by kind
    (``perception`` for a status named ``/perception: perception``, as ``diagnostic_status`` names them)."""
    return {kind: {kv.key: kv.value for kv in st.values}
            for st in msg.status for kind in kinds if st.name.endswith(f": {kind}")}


def camera_info_msg_from_fields(fields: dict, stamp_ns: int, frame_id: str) -> CameraInfo:
    """``CameraInfo`` from plain fields (``data.calibration.CameraCalibration.info_fields()``)."""
    msg = CameraInfo(header=header(stamp_ns, frame_id))
    msg.height, msg.width, msg.distortion_model = fields["height"], fields["width"], fields["distortion_model"]
    msg.d, msg.k, msg.r, msg.p = (np.asarray(fields[k], np.float64).tolist() for k in ("d", "k", "r", "p"))
    return msg
