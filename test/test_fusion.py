"""tracking.fusion: depth medians in boxes, the stamped buffer, the target as a track, REMOVED notices, camera ids."""

import dataclasses

import numpy as np
import pytest
from depthtracker.tracking.fusion import (
    TARGET_LABEL,
    StampedBuffer,
    TrackView,
    box_median_depth,
    camera_of_frame,
    concat_tracks,
    target_track,
    target_track_id,
    with_depths,
)
from depthtracker.tracking.mot import ID_CAMERA_SHIFT
from depthtracker.types import TargetState, Tracks, TrackState


def make_tracks(ids, states, camera_id=1, stamp_ns=100):
    n = len(ids)
    boxes = np.array([[10 * k, 0, 10 * k + 5, 5] for k in range(n)], np.float32).reshape(-1, 4)
    return Tracks(np.array(ids, np.int64), boxes, np.ones((n, 4), np.float32), np.full(n, 0.9, np.float32),
                  np.zeros(n, np.int64), np.array(states, np.int8), camera_id, stamp_ns)


def test_box_median_depth_uses_pixel_centres_and_ignores_nan():
    depth = np.arange(6 * 8, dtype=np.float32).reshape(6, 8)
    depth[0, 0] = np.nan
    boxes = np.array([
        [0, 0, 2, 2],  # pixels (0,0) nan, (0,1)=1, (1,0)=8, (1,1)=9 -> median of 1, 8, 9
        [1.4, 1.4, 2.6, 2.6],  # centres 1.5 and 2.5 -> columns/rows 1..2
        [-5, -5, 0.4, 0.4],  # no pixel centre inside
        [7, 5, 100, 100],  # clipped to pixel (5, 7)
    ], np.float32)
    got = box_median_depth(depth, boxes)
    assert got[0] == 8.0
    assert got[1] == np.median(depth[1:3, 1:3])
    assert np.isnan(got[2])
    assert got[3] == depth[5, 7]
    all_nan = np.full((4, 4), np.nan, np.float32)
    assert np.isnan(box_median_depth(all_nan, boxes[:1])).all()
    with pytest.raises(ValueError, match="shape"):
        box_median_depth(np.zeros((2, 2, 2)), boxes)


def test_with_depths_fills_or_sets_nan():
    t = make_tracks([1, 2], [1, 1])
    depth = np.full((20, 40), 3.5, np.float32)
    np.testing.assert_array_equal(with_depths(t, depth).depths, [3.5, 3.5])
    assert np.isnan(with_depths(t, None).depths).all()


def test_stamped_buffer_keeps_the_newest():
    buf = StampedBuffer(2)
    buf.put(1, "cam0", "a")
    buf.put(2, "cam0", "b")
    buf.put(2, "cam1", "c")
    assert buf.get(1, "cam0") is None and buf.evicted == 1
    assert buf.get(2, "cam0") == "b" and buf.get(2, "cam1") == "c" and buf.get(2, "cam2") is None
    with pytest.raises(ValueError, match="capacity"):
        StampedBuffer(0)


def test_target_track_has_the_reserved_id():
    state = TargetState(np.array([1, 2, 30, 40], np.float32), np.zeros(4, np.float32), 0.8, camera_id=3,
                        stamp_ns=5, occluded=True)
    t = target_track(state)
    assert t.ids.tolist() == [3 << ID_CAMERA_SHIFT] == [target_track_id(3)]
    assert t.is_target.tolist() == [True] and t.labels.tolist() == [TARGET_LABEL]
    assert t.states.tolist() == [TrackState.LOST] and t.camera_id == 3
    np.testing.assert_array_equal(t.boxes[0], state.box)
    lost = TargetState(state.box, state.velocity, 0.0, 3, 6, tracking=False)
    assert len(target_track(lost)) == 0


def test_track_view_hides_tentative_and_reports_removed_once():
    view = TrackView()
    out = view.step(make_tracks([1, 2, 3], [TrackState.CONFIRMED, TrackState.TENTATIVE, TrackState.LOST]))
    assert out.ids.tolist() == [1, 3] and out.states.tolist() == [1, 2]
    out = view.step(make_tracks([3], [TrackState.LOST], stamp_ns=200))
    assert out.ids.tolist() == [3, 1] and out.states.tolist() == [TrackState.LOST, TrackState.REMOVED]
    assert out.stamp_ns == 200
    out = view.step(make_tracks([], [], stamp_ns=300))
    assert out.ids.tolist() == [3] and out.states.tolist() == [TrackState.REMOVED]
    assert len(view.step(make_tracks([], [], stamp_ns=400))) == 0
    assert TrackView(publish_tentative=True).step(make_tracks([1, 2], [1, 0])).ids.tolist() == [1, 2]


def test_track_view_and_concat_keep_age_and_hits():
    """A removed track is reported with its last age and hits; a part without them (the target) reads 0."""
    view = TrackView()
    first = dataclasses.replace(make_tracks([1, 2], [TrackState.CONFIRMED] * 2), ages=np.array([9, 4], np.int64),
                                hits=np.array([8, 4], np.int64))
    out = view.step(first)
    assert out.ages.tolist() == [9, 4] and out.hits.tolist() == [8, 4]
    out = view.step(dataclasses.replace(make_tracks([2], [TrackState.CONFIRMED], stamp_ns=200),
                                        ages=np.array([5], np.int64), hits=np.array([5], np.int64)))
    assert out.ids.tolist() == [2, 1] and out.ages.tolist() == [5, 9] and out.hits.tolist() == [5, 8]
    target = target_track(TargetState(np.array([1, 2, 30, 40], np.float32), np.zeros(4, np.float32), 0.8, 1, 200))
    both = concat_tracks([out, target], 1, 200)
    assert both.ages.tolist() == [5, 9, 0] and both.hits.tolist() == [5, 8, 0]
    assert np.isnan(both.depths).all() and both.is_target.tolist() == [False, False, True]


def test_camera_of_frame():
    assert camera_of_frame("left", 0, {"left": 4}) == 4
    assert camera_of_frame("rig/cam12_optical", 0, {}) == 12
    assert camera_of_frame("front", 2, {}) == 2
