"""rosbag2 reader for depthtracker bags (layout: ``depthtracker.data.bag_format``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.rosbag2 import Reader

from depthtracker.data.bag_format import _TOPIC, BagError, BagSample, stamp_ns_of, typestore
from depthtracker.data.camera_info import camera_from_info
from depthtracker.data.images import image_to_array
from depthtracker.geometry.rotations import quaternion_to_matrix
from depthtracker.types import Annotations, CameraModel, DepthMap, Frame


def _read_custom_data(path: Path) -> dict[str, Any]:
    meta = path / "metadata.yaml"
    try:
        info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}
    out = {}
    for k, v in (info.get("custom_data") or {}).items():
        try:
            out[k] = json.loads(v)
        except (TypeError, json.JSONDecodeError):
            out[k] = v
    return out


class BagReader:
    """Read a depthtracker bag back into core types.

    ``cameras`` rebuilds every ``CameraModel`` from its first CameraInfo and ``/tf_static``; ``samples()`` yields
    one ``BagSample`` per stamp. Any problem with the files (missing, not a bag, truncated, corrupt) raises a
    ``BagError`` naming the bag.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            raise BagError(f"{self.path} is not a rosbag2 folder (no metadata.yaml); "
                           "was it written completely? Re-record it or run 'depthtracker synth' again")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds; all mean the same to the user
            raise BagError(f"cannot open bag {self.path} ({exc}); is it truncated or corrupt? "
                           "Re-record it or run 'depthtracker synth' again") from exc
        self._store = typestore()
        custom = _read_custom_data(self.path) if self.path.is_dir() else {}
        self.class_names: tuple[str, ...] = tuple(custom.get("depthtracker.class_names") or ())
        pair = custom.get("depthtracker.stereo_pair")
        self.stereo_pair: tuple[int, int] | None = None if not pair else (int(pair[0]), int(pair[1]))
        self.baseline_m: float = float(pair[2]) if pair else 0.0
        self.source: dict[str, Any] | None = custom.get("depthtracker.source")
        self.camera_ids = sorted({int(m.group(1)) for c in self._reader.connections
                                  if (m := _TOPIC.match(c.topic))})
        if not self.camera_ids:
            raise BagError(f"bag {self.path} has no /camN/image_raw topics; topics are {sorted(self.topics)}")
        self._cameras: list[CameraModel] | None = None

    @property
    def topics(self) -> dict[str, str]:
        """Topic name -> message type."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def num_sets(self) -> int:
        """Number of images on the first camera's ``image_raw`` (the number of sets in a synthetic bag)."""
        topic = f"/cam{self.camera_ids[0]}/image_raw"
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    @property
    def start_time_ns(self) -> int:
        """Log time of the bag's first message, nanoseconds."""
        return int(self._reader.start_time)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def messages(self, topics: Sequence[str] | None = None) -> Iterator[tuple[str, int, Any]]:
        """Decoded messages ``(topic, log_time_ns, msg)`` in log-time order."""
        conns = [c for c in self._reader.connections if topics is None or c.topic in topics]
        try:
            for conn, t, raw in self._reader.messages(connections=conns):
                yield conn.topic, t, self._store.deserialize_cdr(raw, conn.msgtype)
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt storage (rosbags, mcap, sqlite3 errors)
            raise BagError(f"bag {self.path} is truncated or corrupt ({type(exc).__name__}: {exc}); "
                           "re-record it or run 'depthtracker synth' again") from exc

    @property
    def cameras(self) -> list[CameraModel]:
        """The rig: one CameraModel per camera id, with poses from ``/tf_static`` (identity when absent)."""
        if self._cameras is None:
            poses: dict[str, np.ndarray] = {}
            infos: dict[int, Any] = {}
            want = ["/tf_static"] + [f"/cam{i}/camera_info" for i in self.camera_ids]
            for topic, _, msg in self.messages(want):
                if topic == "/tf_static":
                    for tr in msg.transforms:
                        T = np.eye(4)
                        r, t = tr.transform.rotation, tr.transform.translation
                        T[:3, :3] = quaternion_to_matrix(np.array([r.x, r.y, r.z, r.w]))
                        T[:3, 3] = [t.x, t.y, t.z]
                        poses[tr.child_frame_id] = T
                else:
                    i = int(_TOPIC.match(topic).group(1))
                    infos.setdefault(i, msg)
                if len(infos) == len(self.camera_ids) and poses:
                    break
            missing = [i for i in self.camera_ids if i not in infos]
            if missing:
                raise BagError(f"bag {self.path} has no camera_info for cameras {missing}")
            self._cameras = [
                camera_from_info(infos[i], i, poses.get(infos[i].header.frame_id), infos[i].header.frame_id)
                for i in self.camera_ids
            ]
        return self._cameras

    def samples(self) -> Iterator[BagSample]:
        """One ``BagSample`` per image stamp, cameras in ``camera_ids`` order; incomplete sets are skipped."""
        topics = [f"/cam{i}/{n}" for i in self.camera_ids for n in ("image_raw", "depth_gt", "objects_gt")]
        pending: dict[int, dict[tuple[int, str], Any]] = {}
        for topic, _, msg in self.messages(topics):
            m = _TOPIC.match(topic)
            cam, kind = int(m.group(1)), m.group(2)
            stamp = stamp_ns_of(msg.header)
            pending.setdefault(stamp, {})[(cam, kind)] = msg
            # Sets complete in log order; emit every older set once a newer stamp appears.
            for old in sorted(s for s in pending if s < stamp):
                sample = self._assemble(old, pending.pop(old))
                if sample is not None:
                    yield sample
        for old in sorted(pending):
            sample = self._assemble(old, pending.pop(old))
            if sample is not None:
                yield sample

    def _assemble(self, stamp: int, parts: dict[tuple[int, str], Any]) -> BagSample | None:
        if any((i, "image_raw") not in parts for i in self.camera_ids):
            return None
        frames, depths, anns = [], [], []
        for i in self.camera_ids:
            img = parts[(i, "image_raw")]
            frames.append(Frame(image_to_array(img, f"{self.path} /cam{i}/image_raw"), i, stamp, img.header.frame_id))
            d = parts.get((i, "depth_gt"))
            depths.append(None if d is None else DepthMap(image_to_array(d, f"{self.path} /cam{i}/depth_gt"), i, stamp))
            a = parts.get((i, "objects_gt"))
            anns.append(None if a is None else _annotations(a, i, stamp))
        return BagSample(stamp, tuple(self.camera_ids), frames, depths, anns)


def _annotations(msg: Any, camera_id: int, stamp_ns: int) -> Annotations:
    tr = msg.tracks
    return Annotations(
        ids=np.array([t.id for t in tr], np.int64),
        boxes=np.array([t.box for t in tr], np.float32).reshape(-1, 4),
        labels=np.array([t.class_id for t in tr], np.int64),
        visibility=np.array([t.visibility for t in tr], np.float32),
        camera_id=camera_id,
        stamp_ns=stamp_ns,
    )
