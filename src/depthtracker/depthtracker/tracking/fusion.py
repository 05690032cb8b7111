"""What the tracking node adds around the trackers: depth inside boxes, the target as a track, removal notices.

ROS-free helpers for ``depthtracker.ros.tracking_node`` (the node converts messages and calls these):

* ``box_median_depth(depth, boxes)`` (from ``geometry.boxes``, re-exported): median metric depth inside each box.
* ``StampedBuffer``: a small per-camera buffer of depth maps keyed by ``(stamp_ns, frame_id)``; a track's depth is
  taken only from the heatmap of the very image its detections came from.
* ``target_track(state)`` / ``TARGET_COUNTER``: the single target published as one more track of its camera with
  the reserved id ``camera_id << ID_CAMERA_SHIFT | 0`` (a ``MultiObjectTracker`` counts its ids from 1, so the
  target never collides with a multi-object track), ``is_target`` true, class ``-1`` (unknown: the target is
  class-agnostic), state CONFIRMED while held, LOST while occluded, age and hits 0 (unknown: ``TargetState``
  counts no frames). The multi-object tracks are not flagged: a
  consumer that wants the target reads the one track with ``is_target``.
* ``TrackView``: per camera and frame, the tracks a consumer sees: confirmed and lost (tentative too when asked),
  then every track that vanished since the previous frame once more with state REMOVED, as ``Track.msg`` promises.
* ``camera_of_frame(frame_id, index, known)``: which camera an image header belongs to.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from depthtracker.geometry.boxes import box_median_depth
from depthtracker.tracking.mot import ID_CAMERA_SHIFT
from depthtracker.types import TargetState, Tracks, TrackState

__all__ = ["TARGET_COUNTER", "TARGET_LABEL", "StampedBuffer", "TrackView", "box_median_depth", "camera_of_frame",
           "concat_tracks", "target_track", "target_track_id", "with_depths"]

TARGET_COUNTER = 0  # id counter reserved for the single target (MultiObjectTracker issues 1, 2, ...)
TARGET_LABEL = -1  # class of the target track: unknown (the target tracker is class-agnostic)
_CAM_RE = re.compile(r"cam(\d+)")


class StampedBuffer:
    """The newest ``capacity`` values keyed by ``(stamp_ns, frame_id)``; the oldest goes first (counted)."""

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        self._items: collections.OrderedDict[tuple[int, str], Any] = collections.OrderedDict()
        self.evicted = 0

    def put(self, stamp_ns: int, frame_id: str, value: Any) -> None:
        key = (int(stamp_ns), frame_id)
        self._items.pop(key, None)  # a repeated key replaces the value and becomes the newest
        self._items[key] = value
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
            self.evicted += 1

    def get(self, stamp_ns: int, frame_id: str) -> Any | None:
        return self._items.get((int(stamp_ns), frame_id))

    def __len__(self) -> int:
        return len(self._items)


def with_depths(tracks: Tracks, depth: np.ndarray | None) -> Tracks:
    """``tracks`` with ``depths`` filled from ``depth`` ((H, W) metres) by ``box_median_depth``; NaN without one."""
    if depth is None:
        depths = np.full(len(tracks), np.nan, np.float32)
    else:
        depths = box_median_depth(depth, tracks.boxes)
    return dataclasses.replace(tracks, depths=depths)


# Per-row arrays of ``Tracks``: the required ones, and the optional ones with what fills a missing one (unknown).
_ROWS = ("ids", "boxes", "velocities", "scores", "labels", "states")
_OPTIONAL_FILL = {"depths": (np.float32, np.nan), "is_target": (np.bool_, False), "ages": (np.int64, 0),
                  "hits": (np.int64, 0)}


def _filled(t: Tracks, name: str) -> np.ndarray:
    value = getattr(t, name)
    if value is not None:
        return value
    dtype, fill = _OPTIONAL_FILL[name]
    return np.full(len(t), fill, dtype)


def concat_tracks(parts: list[Tracks], camera_id: int, stamp_ns: int) -> Tracks:
    """Rows of several ``Tracks`` of one camera in one; every optional array filled (depth NaN, not the target,
    age and hits 0 = unknown) where a part lacks it."""
    parts = parts or [Tracks.empty(camera_id, stamp_ns)]
    rows = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _ROWS}
    rows.update({name: np.concatenate([_filled(p, name) for p in parts]) for name in _OPTIONAL_FILL})
    return Tracks(camera_id=camera_id, stamp_ns=stamp_ns, **rows)


def target_track_id(camera_id: int) -> int:
    """Reserved id of the single target in camera ``camera_id`` (counter ``TARGET_COUNTER``)."""
    return (int(camera_id) << ID_CAMERA_SHIFT) | TARGET_COUNTER


def target_track(state: TargetState) -> Tracks:
    """The target as a one-row ``Tracks`` (see the module docstring); empty once the target is lost."""
    if not state.tracking:
        return concat_tracks([], state.camera_id, state.stamp_ns)
    return Tracks(
        ids=np.array([target_track_id(state.camera_id)], np.int64), boxes=state.box[None].astype(np.float32),
        velocities=state.velocity[None].astype(np.float32), scores=np.array([state.score], np.float32),
        labels=np.array([TARGET_LABEL], np.int64),
        states=np.array([TrackState.LOST if state.occluded else TrackState.CONFIRMED], np.int8),
        camera_id=state.camera_id, stamp_ns=state.stamp_ns, depths=np.full(1, np.nan, np.float32),
        is_target=np.ones(1, bool))


class TrackView:
    """Per camera: the tracks to publish each frame, and each vanished track once more as REMOVED.

    Args:
        publish_tentative: include tentative tracks (not yet confirmed); default only confirmed and lost.
    """

    def __init__(self, publish_tentative: bool = False) -> None:
        self.publish_tentative = bool(publish_tentative)
        self._last: Tracks | None = None

    def step(self, tracks: Tracks) -> Tracks:
        """``tracks``: every live track of this camera now (``depths``/``is_target`` optional). Returns the rows to
        publish: the visible ones, then the previously published ones now gone, with state REMOVED and their last
        box, depth and flag."""
        keep = tracks.states != TrackState.TENTATIVE if not self.publish_tentative else np.ones(len(tracks), bool)
        shown = _select(concat_tracks([tracks], tracks.camera_id, tracks.stamp_ns), keep)
        parts = [shown]
        if self._last is not None and len(self._last):
            gone = ~np.isin(self._last.ids, shown.ids) & (self._last.states != TrackState.REMOVED)
            if gone.any():
                removed = _select(self._last, gone)
                parts.append(dataclasses.replace(removed, states=np.full(int(gone.sum()), TrackState.REMOVED, np.int8),
                                      velocities=np.zeros((int(gone.sum()), 4), np.float32)))
        out = concat_tracks(parts, tracks.camera_id, tracks.stamp_ns)
        self._last = out
        return out


def _select(t: Tracks, mask: np.ndarray) -> Tracks:
    rows = {name: getattr(t, name)[mask] for name in _ROWS}
    rows.update({name: _filled(t, name)[mask] for name in _OPTIONAL_FILL})
    return Tracks(camera_id=t.camera_id, stamp_ns=t.stamp_ns, **rows)


def camera_of_frame(frame_id: str, index: int, known: Mapping[str, int]) -> int:
    """Camera id of an image header in ``DetectionArray.camera_headers``.

    In order: the camera its frame was seen with before (``known``: frame_id -> Detection.camera_id), else the
    number in a ``camN...`` frame name (the rig's ``camN_optical``), else ``index``, its position in the list.
    """
    if frame_id in known:
        return int(known[frame_id])
    m = _CAM_RE.search(frame_id)
    return int(m.group(1)) if m else int(index)
