"""Format of depthtracker bags: topic layout, message types, typestore and errors (rosbags; no ROS install needed).

Topic layout of a depthtracker bag (one group per camera ``N``, all stamped with the image stamp):

=======================  =============================  ===========================================================
topic                    type                           content
=======================  =============================  ===========================================================
``/camN/image_raw``      sensor_msgs/msg/Image          rgb8
``/camN/camera_info``    sensor_msgs/msg/CameraInfo     K, D (plumb_bob), P (right stereo camera: ``P[0,3] = -fx·B``)
``/camN/depth_gt``       sensor_msgs/msg/Image          32FC1 metres along the optical axis, NaN = unknown
``/camN/objects_gt``     depthtracker_msgs/msg/TrackArray  global ids, tight visible boxes, class, visibility,
                                                        median depth (velocity and box_sigma are 0 in ground truth)
``/tf_static``           tf2_msgs/msg/TFMessage         ``world -> camN_optical`` for every camera, once
=======================  =============================  ===========================================================

The bag's ``metadata.yaml`` ``custom_data`` holds ``depthtracker.class_names`` (JSON list), ``depthtracker.stereo_pair``
(JSON ``[left, right, baseline_m]`` or ``null``) and, for synthetic bags, ``depthtracker.source`` (JSON of the config).

A bag is written into a hidden sibling folder and renamed into place only after it closed cleanly, so a bag that
exists under its name is complete; a failed write leaves nothing behind. Storage is mcap (the default, what Foxglove
opens) or sqlite3.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import StoragePlugin
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from depthtracker.types import Annotations, DepthMap, Frame

__all__ = ["STORAGES", "BagError", "BagSample", "typestore", "msg_definitions_dir", "stamp_msg", "header_msg",
           "stamp_ns_of"]

STORAGES = ("mcap", "sqlite3")
_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# Messages in dependency order: a type is registered after the types it uses.
_OWN_MSGS = ("Detection", "DetectionArray", "Track", "TrackArray", "TargetMeasurement", "TargetRequest")
_TOPIC = re.compile(r"^/cam(\d+)/(image_raw|camera_info|depth_gt|objects_gt)$")
WORLD_FRAME = "world"


class BagError(ValueError):
    """A bag cannot be written or read; the message names the bag and what to do."""


def msg_definitions_dir() -> Path:
    """Folder with ``depthtracker_msgs``' ``.msg`` files: the source checkout's, else an installed ament prefix's."""
    candidates = [Path(__file__).resolve().parents[3] / "depthtracker_msgs" / "msg"]
    for prefix in [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]:
        candidates.append(Path(prefix) / "share" / "depthtracker_msgs" / "msg")
    candidates.append(Path(sys.prefix) / "share" / "depthtracker_msgs" / "msg")
    for c in candidates:
        if (c / "Track.msg").is_file():
            return c
    raise BagError(
        "cannot find depthtracker_msgs' .msg files (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); run from the source checkout or install depthtracker_msgs (make setup)"
    )


@functools.cache
def typestore() -> Any:
    """The ROS 2 Kilted typestore with ``depthtracker_msgs`` registered from its ``.msg`` files."""
    store = get_typestore(Stores.ROS2_KILTED)
    folder = msg_definitions_dir()
    for name in _OWN_MSGS:
        store.register(get_types_from_msg((folder / f"{name}.msg").read_text(), f"depthtracker_msgs/msg/{name}"))
    return store


@dataclass(frozen=True, eq=False)
class BagSample:
    """One synchronised set read from a bag: per camera (in ``camera_ids`` order) frame, depth and annotations.

    ``depths`` and ``annotations`` hold ``None`` for cameras whose bag has no ground-truth topics.
    """

    stamp_ns: int
    camera_ids: tuple[int, ...]
    frames: list[Frame]
    depths: list[DepthMap | None]
    annotations: list[Annotations | None]


def stamp_msg(store: Any, stamp_ns: int) -> Any:
    return store.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def header_msg(store: Any, stamp_ns: int, frame_id: str) -> Any:
    return store.types["std_msgs/msg/Header"](stamp=stamp_msg(store, stamp_ns), frame_id=frame_id)


def stamp_ns_of(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
