"""Atomic rosbag2 writer for depthtracker bags (layout: ``depthtracker.data.bag_format``)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Writer

from depthtracker.data.bag_format import _PLUGINS, STORAGES, WORLD_FRAME, BagError, header_msg, typestore
from depthtracker.data.camera_info import camera_info_fields
from depthtracker.geometry.boxes import box_median_depth
from depthtracker.geometry.rotations import matrix_to_quaternion
from depthtracker.types import Annotations, CameraModel, DepthMap, Frame, TrackState


class BagWriter:
    """Write a depthtracker bag (see the module docstring) atomically.

    Use as a context manager::

        with BagWriter(path, world.cameras, storage="mcap", class_names=world.class_names) as bag:
            for sample in world:
                bag.write_sample(sample)

    Raises ``BagError`` before anything is written if ``storage`` is unknown, ``path`` exists, or its parent
    cannot be written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        cameras: Sequence[CameraModel],
        storage: str = "mcap",
        class_names: Sequence[str] = (),
        stereo_pair: tuple[int, int] | None = None,
        baseline_m: float = 0.0,
        source: dict[str, Any] | None = None,
    ) -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}: choose one of {', '.join(STORAGES)}")
        if not cameras:
            raise BagError("a bag needs at least one camera (got an empty camera list)")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag {self.path} already exists: choose another path or delete it first")
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BagError(f"cannot create the folder {parent} for bag {self.path}: {exc.strerror}") from exc
        if not os.access(parent, os.W_OK | os.X_OK):
            raise BagError(f"cannot write bag {self.path}: folder {parent} is not writable; choose another path")
        self.cameras = list(cameras)
        self.storage = storage
        self.class_names = tuple(class_names)
        self.stereo_pair = stereo_pair
        self.baseline_m = float(baseline_m)
        self.source = source
        self._store = typestore()
        self._tmpdir: Path | None = None
        self._writer: Writer | None = None
        self._conns: dict[str, Any] = {}
        self._tf_written = False
        self.num_sets = 0

    # -- context -----------------------------------------------------------------------------------------------------
    def __enter__(self) -> BagWriter:
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=self.path.parent))
        bag_dir = self._tmpdir / self.path.name
        self._writer = Writer(bag_dir, version=9, storage_plugin=_PLUGINS[self.storage])
        self._writer.set_custom_data("depthtracker.class_names", json.dumps(list(self.class_names)))
        pair = None if self.stereo_pair is None else [*self.stereo_pair, self.baseline_m]
        self._writer.set_custom_data("depthtracker.stereo_pair", json.dumps(pair))
        if self.source is not None:
            self._writer.set_custom_data("depthtracker.source", json.dumps(self.source, sort_keys=True))
        self._writer.open()
        self._conns["/tf_static"] = self._writer.add_connection(
            "/tf_static", "tf2_msgs/msg/TFMessage", typestore=self._store
        )
        for cam in self.cameras:
            i = cam.camera_id
            for name, msgtype in (
                ("image_raw", "sensor_msgs/msg/Image"),
                ("camera_info", "sensor_msgs/msg/CameraInfo"),
                ("depth_gt", "sensor_msgs/msg/Image"),
                ("objects_gt", "depthtracker_msgs/msg/TrackArray"),
            ):
                topic = f"/cam{i}/{name}"
                self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self._store)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._writer is not None and self._tmpdir is not None
        try:
            if exc_type is None:
                self._writer.close()
                os.replace(self._tmpdir / self.path.name, self.path)
        except OSError as err:
            raise BagError(f"could not finish bag {self.path}: {err}") from err
        finally:
            if exc_type is not None:
                try:
                    self._writer.abort()
                except Exception:  # noqa: BLE001 - the original error is what matters; the folder goes below
                    pass
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    # -- writing -----------------------------------------------------------------------------------------------------
    def _put(self, topic: str, stamp_ns: int, msg: Any) -> None:
        assert self._writer is not None, "use BagWriter as a context manager"
        conn = self._conns.get(topic)
        if conn is None:
            raise BagError(f"bag {self.path}: no camera for topic {topic}; cameras are "
                           f"{[c.camera_id for c in self.cameras]}")
        self._writer.write(conn, stamp_ns, self._store.serialize_cdr(msg, conn.msgtype))

    def _write_tf_static(self, stamp_ns: int) -> None:
        T = self._store.types
        transforms = []
        for cam in self.cameras:
            q = matrix_to_quaternion(cam.T_world_cam[:3, :3])
            t = cam.T_world_cam[:3, 3]
            transforms.append(
                T["geometry_msgs/msg/TransformStamped"](
                    header=header_msg(self._store, stamp_ns, WORLD_FRAME),
                    child_frame_id=cam.frame_id,
                    transform=T["geometry_msgs/msg/Transform"](
                        translation=T["geometry_msgs/msg/Vector3"](x=float(t[0]), y=float(t[1]), z=float(t[2])),
                        rotation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
                    ),
                )
            )
        self._put("/tf_static", stamp_ns, T["tf2_msgs/msg/TFMessage"](transforms=transforms))
        self._tf_written = True

    def _camera(self, camera_id: int) -> CameraModel:
        for cam in self.cameras:
            if cam.camera_id == camera_id:
                return cam
        raise BagError(f"bag {self.path}: camera {camera_id} is not in the rig {[c.camera_id for c in self.cameras]}")

    def write(
        self,
        stamp_ns: int,
        frames: Sequence[Frame],
        depths: Sequence[DepthMap] = (),
        annotations: Sequence[Annotations] = (),
    ) -> None:
        """Write one synchronised set: every frame, and ground truth where given (matched by ``camera_id``)."""
        T = self._store.types
        if not self._tf_written:
            self._write_tf_static(stamp_ns)
        depth_by_cam = {d.camera_id: d for d in depths}
        ann_by_cam = {a.camera_id: a for a in annotations}
        for frame in frames:
            cam = self._camera(frame.camera_id)
            i, h, w = cam.camera_id, cam.height, cam.width
            if frame.image.shape != (h, w, 3):
                raise BagError(f"frame of camera {i} has shape {frame.image.shape}, camera model says {(h, w, 3)}")
            header = header_msg(self._store, stamp_ns, cam.frame_id)
            img = np.ascontiguousarray(frame.image).reshape(-1)
            self._put(f"/cam{i}/image_raw", stamp_ns, T["sensor_msgs/msg/Image"](
                header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3, data=img))
            tx = 0.0
            if self.stereo_pair is not None and i == self.stereo_pair[1]:
                tx = -float(cam.K[0, 0]) * self.baseline_m
            f = camera_info_fields(cam, tx)
            roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
            self._put(f"/cam{i}/camera_info", stamp_ns, T["sensor_msgs/msg/CameraInfo"](
                header=header, binning_x=0, binning_y=0, roi=roi, **f))
            depth = depth_by_cam.get(i)
            if depth is not None:
                if depth.depth.shape != (h, w):
                    raise BagError(f"depth of camera {i} has shape {depth.depth.shape}, camera model says {(h, w)}")
                data = np.ascontiguousarray(depth.depth, dtype="<f4").view(np.uint8).reshape(-1)
                self._put(f"/cam{i}/depth_gt", stamp_ns, T["sensor_msgs/msg/Image"](
                    header=header, height=h, width=w, encoding="32FC1", is_bigendian=0, step=w * 4, data=data))
            ann = ann_by_cam.get(i)
            if ann is not None:
                self._put(f"/cam{i}/objects_gt", stamp_ns, self._track_array(header, cam, ann, depth))
        self.num_sets += 1

    def _track_array(self, header: Any, cam: CameraModel, ann: Annotations, depth: DepthMap | None) -> Any:
        T = self._store.types
        tracks = []
        medians = (box_median_depth(depth.depth, ann.boxes) if depth is not None
                   else np.full(len(ann), np.nan, np.float32))
        for k in range(len(ann)):
            med = float(medians[k])
            tracks.append(T["depthtracker_msgs/msg/Track"](
                id=int(ann.ids[k]), camera_id=cam.camera_id, frame_id=cam.frame_id,
                box=np.asarray(ann.boxes[k], np.float32), velocity=np.zeros(4, np.float32),
                box_sigma=np.zeros(4, np.float32), class_id=int(ann.labels[k]), score=1.0,
                state=TrackState.CONFIRMED, depth=med, visibility=float(ann.visibility[k]), is_target=False,
                age=0, hits=0))
        return T["depthtracker_msgs/msg/TrackArray"](header=header, tracks=tracks)

    def write_sample(self, sample: Any) -> None:
        """Write a ``SynthSample`` (or anything with ``stamp_ns, frames, depths, annotations``)."""
        self.write(sample.stamp_ns, sample.frames, sample.depths, sample.annotations)
