"""MultiObjectTracker: config, scenarios (static, crossing, occlusion, cameras, empty frames), input validation, time
handling, and a metric regression on noisy TUD-Campus detections against a committed baseline."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from depthtracker.configio import config_dir, from_mapping, load_config, load_yaml, ros_parameters
from depthtracker.tracking import MultiObjectTracker, TrackerConfig
from depthtracker.tracking.mot import ID_CAMERA_SHIFT
from depthtracker.types import Detections, TrackState

DATA = Path(__file__).parent / "data" / "tracking"
FPS = 30.0
NS = int(1e9 / FPS)


def dets(boxes, scores=None, labels=None, camera_id: int = 0, frame: int = 0, sigmas=None) -> Detections:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(b)
    s = np.full(n, 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    lab = np.zeros(n, np.int64) if labels is None else np.asarray(labels, np.int64)
    sig = None if sigmas is None else np.asarray(sigmas, np.float32)
    return Detections(b, s, lab, camera_id, 1_000_000_000 + frame * NS, sig)


def box(cx: float, cy: float, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


# ---- config ------------------------------------------------------------------------------------------------------
def test_yaml_mirrors_dataclass_defaults() -> None:
    assert load_config(TrackerConfig, name="tracking") == TrackerConfig()
    params = ros_parameters(load_yaml(config_dir() / "tracking.yaml"))
    assert set(params) == {f.name for f in dataclasses.fields(TrackerConfig)}  # every field spelled out


@pytest.mark.parametrize("field,value", [("high_score", 1.5), ("min_hits", 0), ("min_hits", 2.5),
                                         ("max_lost_s", -1.0), ("gate_probability", 0.9), ("fuse_score", 1),
                                         ("reference_dt_s", 0.0), ("std_weight_position", float("nan"))])
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrackerConfig(**{field: value})


def test_config_cross_field_checks_and_unknown_keys() -> None:
    with pytest.raises(ValueError, match="low_score"):
        TrackerConfig(low_score=0.7, high_score=0.5)
    with pytest.raises(ValueError, match="new_track_score"):
        TrackerConfig(new_track_score=0.4)
    with pytest.raises(ValueError, match="unknown key"):
        from_mapping(TrackerConfig, {"track_thresh": 0.5})


# ---- scenarios ---------------------------------------------------------------------------------------------------
def test_static_object() -> None:
    rng = np.random.default_rng(0)
    tracker = MultiObjectTracker()
    ids = set()
    for f in range(40):
        out = tracker.update(dets([np.add(box(200, 150), rng.normal(0, 1.0, 4))], frame=f))
        assert len(out) == 1 and out.states[0] == TrackState.CONFIRMED
        ids.add(int(out.ids[0]))
    assert len(ids) == 1
    np.testing.assert_allclose(out.boxes[0], box(200, 150), atol=2.5)
    assert np.abs(out.velocities).max() < 30.0  # px/s: it does not move
    assert len(tracker.tracks) == 1


def test_crossing_objects_keep_identities() -> None:
    """Two people walk towards each other along the same line, overlap for several frames, and part."""
    tracker = MultiObjectTracker()
    first_ids = None
    for f in range(60):
        xa, xb = 100 + 8 * f, 580 - 8 * f  # they meet at frame 30
        out = tracker.update(dets([box(xa, 200), box(xb, 204)], frame=f))
        if f == 0:
            first_ids = {int(i): float(b[0]) for i, b in zip(out.ids, out.boxes)}
    left_id = min(first_ids, key=first_ids.get)
    assert len(out) == 2 and set(out.ids.tolist()) == set(first_ids)
    by_x = {int(i): float(b[0]) for i, b in zip(out.ids, out.boxes)}
    assert max(by_x, key=by_x.get) == left_id  # the one that started on the left ends on the right
    vx = dict(zip(out.ids.tolist(), out.velocities[:, 0].tolist()))
    assert vx[left_id] == pytest.approx(8 * FPS, rel=0.1)  # px/s from stamps


@pytest.mark.parametrize("gap", [5, 20])
def test_occlusion_keeps_identity(gap: int) -> None:
    tracker = MultiObjectTracker()
    f = 0
    for f in range(15):
        out = tracker.update(dets([box(100 + 5 * f, 200)], frame=f))
    track_id = int(out.ids[0])
    for f in range(15, 15 + gap):  # occluded: nothing detected
        assert len(tracker.update(dets([], frame=f))) == 0
        (state,) = tracker.tracks.states
        assert state == TrackState.LOST
        assert tracker.tracks.boxes[0, 0] == pytest.approx(box(100 + 5 * f, 200)[0], abs=6.0)  # predicted on
    f += 1
    out = tracker.update(dets([box(100 + 5 * f, 200)], frame=f))
    assert out.ids.tolist() == [track_id]


def test_age_and_hits_count_frames_of_the_track() -> None:
    """age: frames since birth (birth frame counted); hits: frames matched; a missed frame ages without a hit, and
    a track born later starts at 1 / 1."""
    tracker = MultiObjectTracker()
    for f in range(5):
        out = tracker.update(dets([box(100 + 5 * f, 200)], frame=f))
    assert out.ages.tolist() == [5] and out.hits.tolist() == [5]
    for f in range(5, 7):  # missed twice: lost, still aging
        tracker.update(dets([], frame=f))
    assert tracker.tracks.ages.tolist() == [7] and tracker.tracks.hits.tolist() == [5]
    f = 7
    tracker.update(dets([box(100 + 5 * f, 200), box(500, 200)], frame=f))
    ages, hits = dict(zip(tracker.tracks.ids.tolist(), tracker.tracks.ages.tolist())), tracker.tracks.hits
    assert sorted(ages.values()) == [1, 8] and sorted(hits.tolist()) == [1, 6]


def test_long_occlusion_removes_track() -> None:
    cfg = TrackerConfig(max_lost_s=0.5)
    tracker = MultiObjectTracker(cfg)
    for f in range(5):
        out = tracker.update(dets([box(100, 200)], frame=f))
    old = int(out.ids[0])
    for f in range(5, 5 + 16):  # 16 frames > 0.5 s at 30 fps
        tracker.update(dets([], frame=f))
    assert len(tracker.tracks) == 0
    tracker.update(dets([box(100, 200)], frame=21))
    (new,) = tracker.tracks.ids
    assert new != old and tracker.tracks.states[0] == TrackState.TENTATIVE


def test_identities_per_camera() -> None:
    trackers = {cam: MultiObjectTracker() for cam in (0, 3)}
    seen = {}
    for f in range(5):
        for cam, tr in trackers.items():
            out = tr.update(dets([box(100, 200), box(300, 200)], camera_id=cam, frame=f))
            seen[cam] = set(out.ids.tolist())
    assert not seen[0] & seen[3]
    assert {i >> ID_CAMERA_SHIFT for i in seen[3]} == {3} and {i >> ID_CAMERA_SHIFT for i in seen[0]} == {0}
    assert sorted(i & 0xFFFFFFFF for i in seen[0]) == [1, 2]  # counters are per instance, starting at 1
    with pytest.raises(ValueError, match="camera 0"):
        trackers[0].update(dets([box(100, 200)], camera_id=1, frame=6))
    assert MultiObjectTracker(camera_id=2).tracks.camera_id == 2


def test_empty_frames() -> None:
    tracker = MultiObjectTracker()
    out = tracker.update(Detections.empty(0, 0))
    assert len(out) == 0 and len(tracker.tracks) == 0
    tracker.update(dets([box(100, 200)], frame=1))  # not the first frame any more: the track starts tentative
    assert tracker.tracks.states.tolist() == [TrackState.TENTATIVE]
    assert len(tracker.update(dets([], frame=2))) == 0
    assert len(tracker.tracks) == 0  # an unmatched tentative track is removed


@pytest.mark.parametrize("bad,what", [([0, 0, np.nan, 10], "non-finite"), ([0, 0, np.inf, 10], "non-finite"),
                                      ([10, 0, 0, 10], "negative width")])
def test_invalid_detections_raise(bad: list[float], what: str) -> None:
    with pytest.raises(ValueError, match=rf"{what}.*rows \[1\]"):
        dets([box(100, 200), bad])
    with pytest.raises(TypeError, match="Detections"):
        MultiObjectTracker().update({"boxes": np.zeros((0, 4))})


def test_zero_size_detection_is_ignored() -> None:
    tracker = MultiObjectTracker()
    out = tracker.update(dets([box(100, 200), [50, 50, 50, 80]]))
    assert len(out) == 1


def test_low_scores_extend_but_do_not_start_tracks() -> None:
    tracker = MultiObjectTracker()
    tracker.update(dets([box(100, 200)], frame=0))
    out = tracker.update(dets([box(103, 200), box(400, 200)], scores=[0.3, 0.3], frame=1))
    assert len(out) == 1 and len(tracker.tracks) == 1  # the low detection at 400 starts nothing


def test_class_aware_matching() -> None:
    tracker = MultiObjectTracker()
    tracker.update(dets([box(100, 200)], labels=[0], frame=0))
    out = tracker.update(dets([box(101, 200)], labels=[2], frame=1))
    assert len(out) == 0  # the class-2 detection starts its own (tentative) track
    assert sorted(tracker.tracks.labels.tolist()) == [0, 2]
    tracker = MultiObjectTracker(TrackerConfig(class_aware=False))
    tracker.update(dets([box(100, 200)], labels=[0], frame=0))
    out = tracker.update(dets([box(101, 200)], labels=[2], frame=1))
    assert out.labels.tolist() == [2]


def test_detection_sigmas_scale_measurement_noise() -> None:
    """A detection with a large sigma moves the track less than one with a small sigma."""
    moved = {}
    for sigma in (1.0, 30.0):
        tracker = MultiObjectTracker()
        for f in range(10):
            tracker.update(dets([box(100, 200)], frame=f, sigmas=[[1.0] * 4]))
        out = tracker.update(dets([box(110, 200)], frame=10, sigmas=[[sigma] * 4]))
        moved[sigma] = float(out.boxes[0, 0] - box(100, 200)[0])
    assert 8.0 < moved[1.0] <= 10.0 and moved[30.0] < 2.0


def test_time_rules() -> None:
    tracker = MultiObjectTracker()
    for f in range(10):
        tracker.update(dets([box(100 + 6 * f, 200)], frame=f))
    before = tracker.tracks.boxes.copy()
    tracker.update(dets([], frame=9))  # repeated stamp: no prediction
    np.testing.assert_array_equal(tracker.tracks.boxes, before)
    tracker.update(dets([], frame=8))  # slightly older stamp: no prediction, clock keeps the newest
    np.testing.assert_array_equal(tracker.tracks.boxes, before)
    assert tracker.tracks.stamp_ns == dets([], frame=9).stamp_ns
    old_ids = set(tracker.tracks.ids.tolist())
    out = tracker.update(dets([box(100, 200)], frame=-30))  # 1.3 s back (> max_backward_jump_s): reset
    assert len(tracker.tracks) == 1 and len(out) == 1  # a fresh start: its first frame confirms at once
    assert int(out.ids[0]) not in old_ids  # ids are never reused


# ---- metric regression -------------------------------------------------------------------------------------------
def _read_dets(path: Path) -> list[Detections]:
    """MOTChallenge det file (frame, -1, x, y, w, h, score, ...) -> one Detections per frame, 25 fps stamps."""
    a = np.loadtxt(path, delimiter=",", ndmin=2)
    out = []
    for f in range(1, int(a[:, 0].max()) + 1):
        r = a[a[:, 0] == f]
        b = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1).astype(np.float32)
        out.append(Detections(b, r[:, 6].astype(np.float32), np.zeros(len(r), np.int64), 0, f * 40_000_000))
    return out


def test_metric_regression_tud_campus() -> None:
    """Our tracker on the committed noisy TUD-Campus detections (bench/tracking.py) against the committed baseline."""
    motmetrics = pytest.importorskip("motmetrics")
    from depthtracker.eval.metrics import mot_metrics

    a = np.loadtxt(Path(motmetrics.__file__).parent / "data" / "TUD-Campus" / "gt.txt", delimiter=",", ndmin=2)
    gt = {int(f): (a[a[:, 0] == f][:, 1].astype(np.int64),
                   np.concatenate([a[a[:, 0] == f][:, 2:4], a[a[:, 0] == f][:, 2:4] + a[a[:, 0] == f][:, 4:6]], 1))
          for f in np.unique(a[:, 0])}
    tracker = MultiObjectTracker()
    hyp = {}
    for f, d in enumerate(_read_dets(DATA / "tud_campus_noisy_dets.txt"), start=1):
        t = tracker.update(d)
        hyp[f] = (t.ids, t.boxes.astype(np.float64))
    m = mot_metrics(gt, hyp)
    baseline = json.loads((DATA / "tud_campus_baseline.json").read_text())
    for key in ("HOTA", "MOTA", "IDF1", "DetA", "AssA"):
        assert m[key] == pytest.approx(baseline[key], abs=0.005), key


# ---- association helpers -----------------------------------------------------------------------------------------
def test_iou_matches_geometry_and_cost_limited_assignment() -> None:
    from depthtracker.geometry.boxes import box_iou
    from depthtracker.tracking.association import iou_xyxy, linear_assignment

    rng = np.random.default_rng(5)
    lo_a, lo_b = rng.uniform(0, 60, (7, 2)), rng.uniform(0, 60, (5, 2))
    a = np.concatenate([lo_a, lo_a + rng.uniform(1, 40, (7, 2))], axis=1)
    b = np.concatenate([lo_b, lo_b + rng.uniform(1, 40, (5, 2))], axis=1)
    np.testing.assert_allclose(iou_xyxy(a, b), box_iou(a, b), rtol=1e-12, atol=1e-15)
    # A weak pair never displaces a strong one: rows A, B; A-1 costs 0.1, A-2 0.7, B-1 0.75 (limit 0.8). Maximum
    # cardinality would take A-2 + B-1 (1.45); the cost-limited optimum is A-1 alone (0.1 + 0.8 for leaving B, 2).
    cost = np.array([[0.1, 0.7], [0.75, np.inf]])
    rows, cols = linear_assignment(cost, 0.8)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 0)]
    rows, cols = linear_assignment(np.array([[0.9, np.nan]]), 0.8)
    assert rows.size == 0
