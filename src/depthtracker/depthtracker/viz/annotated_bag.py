"""An annotated rosbag2 (mcap) of what the graph saw and published, for Foxglove Studio or any rosbag2 reader.

Per camera N: ``/camN/image_annotated`` (rgb8: the image with the multi-object tracks, ids and classes drawn, the
single target in white), ``/camN/depth_heatmap`` (32FC1 metres, as the graph publishes it), ``/camN/depth_color``
(rgb8 colour map), ``/camN/camera_info``; and ``/tracks`` (``depthtracker_msgs/TrackArray`` per camera and set,
boxes of the confirmed tracks and the target). Written with rosbags (no ROS install needed) atomically: the bag
appears under its name once complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from depthtracker.data.bag_format import header_msg, typestore
from depthtracker.data.camera_info import camera_info_fields
from depthtracker.types import CameraModel

__all__ = ["AnnotatedBag"]


class AnnotatedBag:
    """``with AnnotatedBag(path, cameras) as bag: bag.write(stamp, camera_id, annotated, depth, color, tracks)``."""

    def __init__(self, path: str | os.PathLike[str], cameras: Sequence[CameraModel]) -> None:
        self.path = Path(path)
        if self.path.exists():
            shutil.rmtree(self.path)  # a demo output: rewritten on every run
        self.cameras = {c.camera_id: c for c in cameras}
        self._store = typestore()
        self._conns: dict[str, Any] = {}

    def __enter__(self) -> AnnotatedBag:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=self.path.parent))
        self._writer = Writer(self._tmp / self.path.name, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        for i in self.cameras:
            for name, kind in (("image_annotated", "sensor_msgs/msg/Image"), ("depth_heatmap", "sensor_msgs/msg/Image"),
                               ("depth_color", "sensor_msgs/msg/Image"), ("camera_info", "sensor_msgs/msg/CameraInfo")):
                self._conns[f"/cam{i}/{name}"] = self._writer.add_connection(f"/cam{i}/{name}", kind,
                                                                             typestore=self._store)
        self._conns["/tracks"] = self._writer.add_connection("/tracks", "depthtracker_msgs/msg/TrackArray",
                                                             typestore=self._store)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._writer.close()
                os.replace(self._tmp / self.path.name, self.path)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _image(self, hdr: Any, array: np.ndarray, encoding: str) -> Any:
        a = np.ascontiguousarray(array)
        h, w = a.shape[:2]
        return self._store.types["sensor_msgs/msg/Image"](
            header=hdr, height=h, width=w, encoding=encoding, is_bigendian=0, step=a.strides[0],
            data=a.view(np.uint8).reshape(-1))

    def write(self, stamp_ns: int, camera_id: int, annotated: np.ndarray, depth: np.ndarray | None,
              color: np.ndarray | None, tracks: Sequence[tuple[int, np.ndarray, int, float, bool]]) -> None:
        """One camera image: ``tracks`` as ``(id, box xyxy, class_id, depth_m, is_target)``."""
        T = self._store.types
        cam = self.cameras[camera_id]
        hdr = header_msg(self._store, stamp_ns, cam.frame_id)
        put = self._writer.write
        put(self._conns[f"/cam{camera_id}/image_annotated"], stamp_ns,
            self._store.serialize_cdr(self._image(hdr, annotated, "rgb8"), "sensor_msgs/msg/Image"))
        if depth is not None:
            put(self._conns[f"/cam{camera_id}/depth_heatmap"], stamp_ns,
                self._store.serialize_cdr(self._image(hdr, depth.astype("<f4"), "32FC1"), "sensor_msgs/msg/Image"))
        if color is not None:
            put(self._conns[f"/cam{camera_id}/depth_color"], stamp_ns,
                self._store.serialize_cdr(self._image(hdr, color, "rgb8"), "sensor_msgs/msg/Image"))
        roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        info = T["sensor_msgs/msg/CameraInfo"](header=hdr, binning_x=0, binning_y=0, roi=roi, **camera_info_fields(cam))
        put(self._conns[f"/cam{camera_id}/camera_info"], stamp_ns,
            self._store.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
        msgs = []
        for tid, box, cls, dep, is_target in tracks:
            msgs.append(T["depthtracker_msgs/msg/Track"](
                id=int(tid), camera_id=camera_id, frame_id=cam.frame_id, box=np.asarray(box, np.float32),
                velocity=np.zeros(4, np.float32), box_sigma=np.zeros(4, np.float32), class_id=int(cls), score=1.0,
                state=1, depth=float(dep), visibility=float("nan"), is_target=bool(is_target), age=0, hits=0))
        put(self._conns["/tracks"], stamp_ns, self._store.serialize_cdr(
            T["depthtracker_msgs/msg/TrackArray"](header=hdr, tracks=msgs), "depthtracker_msgs/msg/TrackArray"))
