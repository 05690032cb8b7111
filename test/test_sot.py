"""TargetTracker: SAMURAI-style selection, update gates, occlusion and recovery, input validation, config."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from depthtracker.configio import config_dir, load_config, load_yaml, ros_parameters
from depthtracker.tracking import TargetTracker, TargetTrackerConfig

NS = 33_333_333  # 30 fps


def box(cx: float, cy: float, w: float = 40.0, h: float = 80.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def run_straight(tracker: TargetTracker, frames: int, start: int = 1, vx: float = 4.0) -> None:
    for f in range(start, start + frames):
        tracker.update([box(100 + vx * f, 200)], [0.9], f * NS)


def test_yaml_mirrors_dataclass_defaults() -> None:
    assert load_config(TargetTrackerConfig, name="target") == TargetTrackerConfig()
    params = ros_parameters(load_yaml(config_dir() / "target.yaml"))
    assert set(params) == {f.name for f in dataclasses.fields(TargetTrackerConfig)}  # every field spelled out


@pytest.mark.parametrize("field,value", [("kf_score_weight", 1.2), ("stable_frames", -1), ("presence_score", "x"),
                                         ("max_occlusion_s", float("inf"))])
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TargetTrackerConfig(**{field: value})
    with pytest.raises(ValueError, match="recovery_score"):
        TargetTrackerConfig(presence_score=0.5, recovery_score=0.4)


def test_follows_a_moving_target() -> None:
    tracker = TargetTracker()
    state = tracker.initialize(box(100, 200), 0, camera_id=2)
    assert state.tracking and not state.occluded and state.camera_id == 2
    for f in range(1, 30):
        state = tracker.update([box(100 + 4 * f, 200)], [0.9], f * NS)
    assert state.tracking and not state.occluded and state.score == pytest.approx(0.9)
    np.testing.assert_allclose(state.box, box(100 + 4 * 29, 200), atol=2.0)
    assert state.velocity[0] == pytest.approx(4 * 30, rel=0.1)  # px/s
    assert tracker.selected_index == 0 and tracker.memory_update_ok and tracker.template_update_ok


def test_motion_term_rejects_a_stronger_distractor_once_stable() -> None:
    """After the stable run the Kalman IoU term keeps the target against a slightly higher-scoring distractor; a
    tracker that never becomes stable takes the distractor."""
    results = {}
    for stable_frames in (15, 1000):
        tracker = TargetTracker(TargetTrackerConfig(stable_frames=stable_frames))
        tracker.initialize(box(100, 200), 0)
        run_straight(tracker, 20)
        f = 21
        state = tracker.update([box(400, 200), box(100 + 4 * f, 200)], [0.85, 0.8], f * NS)
        results[stable_frames] = (tracker.selected_index, state)
    assert results[15][0] == 1 and results[1000][0] == 0
    # While young, the winner corrects the filter even far from the prediction (SAMURAI trusts the model then).
    assert results[1000][1].box[0] > 250.0 and not results[1000][1].occluded


def test_motion_term_guards_the_first_frames_against_a_lookalike() -> None:
    """Right after initialize, a near-identical neighbour scoring higher than the target (0.72 vs 0.57, as measured
    on the validation seeds) does not take the track: the given box is a sure position. SAMURAI's 15-frame wait
    (stable_frames=15, weight 0.15) takes the neighbour."""
    chosen = {}
    for cfg in (TargetTrackerConfig(), TargetTrackerConfig(kf_score_weight=0.15, stable_frames=15)):
        tracker = TargetTracker(cfg)
        tracker.initialize(box(100, 200), 0)
        state = tracker.update([box(100, 130), box(112, 200)], [0.72, 0.57], NS)
        chosen[cfg.stable_frames] = (tracker.selected_index, state.box[0])
    assert chosen[0][0] == 1 and chosen[0][1] > 80.0  # the target, moved right by 12 px
    assert chosen[15][0] == 0


def test_occlusion_prediction_and_reappearance() -> None:
    tracker = TargetTracker()
    tracker.initialize(box(100, 200), 0)
    run_straight(tracker, 20)
    for f in range(21, 31):  # 10 frames: nothing, or only weak candidates
        state = tracker.update([box(100 + 4 * f, 200)] if f % 2 else [], [0.1] if f % 2 else [], f * NS)
        assert state.occluded and state.tracking and state.score == 0.0
        assert not tracker.memory_update_ok and not tracker.template_update_ok
        assert state.box[0] == pytest.approx(box(100 + 4 * f, 200)[0], abs=3.0)  # the motion prediction
    state = tracker.update([box(100 + 4 * 31, 200)], [0.5], 31 * NS)
    assert not state.occluded and tracker.selected_index == 0


def test_recovery_far_from_the_prediction() -> None:
    tracker = TargetTracker(TargetTrackerConfig(stable_frames=15))  # a young phase after the restart (default: none)
    tracker.initialize(box(100, 200), 0)
    run_straight(tracker, 20)
    # A weak candidate far away: motion-inconsistent and below recovery_score -> treated as a distractor.
    state = tracker.update([box(500, 300)], [0.4], 21 * NS)
    assert state.occluded and tracker.selected_index is None
    # A confident one: taken, the filter restarts there.
    state = tracker.update([box(500, 300)], [0.9], 22 * NS)
    assert not state.occluded and state.box.tolist() == pytest.approx(box(500, 300))
    assert not tracker.memory_update_ok and not tracker.template_update_ok  # not motion-consistent: no memory
    state = tracker.update([box(500, 300)], [0.9], 23 * NS)
    assert tracker.memory_update_ok and not tracker.template_update_ok  # young again: memory yes, template no


def test_small_fast_target_is_recovered_by_a_medium_score() -> None:
    """The failure found on the 10 s validation bags: a small target (14 x 18 px) speeds up; the Kalman prediction lags
    behind it so far that the right candidate, at a medium score (0.55), no longer overlaps it. The default recovery
    score takes it (the filter restarts on the target); SAMURAI-like 0.6 treats it as a distractor and loses the
    target for good."""
    def run(config: TargetTrackerConfig) -> list[bool]:
        tracker = TargetTracker(config)
        tracker.initialize(box(100, 200, 14, 18), 0)
        for f in range(1, 4):  # slow: 1 px per frame
            tracker.update([box(100 + f, 200, 14, 18)], [0.8], f * NS)
        hits = []
        x = 103.0
        for f in range(4, 12):  # fast: 20 px per frame, the model's score drops to 0.55
            x += 20.0
            state = tracker.update([box(x, 200, 14, 18)], [0.55], f * NS)
            hits.append(abs(float(state.box[0] + state.box[2]) / 2 - x) < 7.0)
        return hits

    assert all(run(TargetTrackerConfig())[1:])  # recovered at once, then followed
    assert not any(run(TargetTrackerConfig(recovery_score=0.6)))


def test_lost_after_max_occlusion_and_reinitialize() -> None:
    tracker = TargetTracker(TargetTrackerConfig(max_occlusion_s=0.5))
    tracker.initialize(box(100, 200), 0)
    run_straight(tracker, 5)
    state = None
    for f in range(6, 6 + 16):  # 16 frames > 0.5 s
        state = tracker.update([], [], f * NS)
    assert not state.tracking and not tracker.active
    state = tracker.update([box(100, 200)], [0.99], 30 * NS)  # stays lost until initialize
    assert not state.tracking and np.all(state.velocity == 0)
    state = tracker.initialize(box(100, 200), 31 * NS)
    assert state.tracking and tracker.active


def test_memory_gate_by_score() -> None:
    tracker = TargetTracker()
    tracker.initialize(box(100, 200), 0)
    tracker.update([box(104, 200)], [0.4], NS)  # accepted (>= presence_score) but below memory_score_gate
    assert tracker.selected_index == 0 and not tracker.memory_update_ok
    tracker.update([box(108, 200)], [0.7], 2 * NS)
    assert tracker.memory_update_ok and not tracker.template_update_ok  # template: only once stable


@pytest.mark.parametrize("boxes,scores,match", [([[0, 0, np.nan, 1]], [0.5], r"NaN or inf values in rows \[0\]"),
                                                ([[0, 0, 1, 1], [0, 0, np.inf, 1]], [0.5, 0.5], r"rows \[1\]"),
                                                ([[5, 0, 1, 1]], [0.5], r"negative width or height in rows \[0\]"),
                                                ([[0, 0, 1, 1]], [np.nan], "scores have NaN"),
                                                ([[0, 0, 1, 1]], [0.5, 0.4], "shape")])
def test_candidate_validation(boxes: list, scores: list, match: str) -> None:
    tracker = TargetTracker()
    tracker.initialize(box(100, 200), 0)
    with pytest.raises(ValueError, match=match):
        tracker.update(boxes, scores, NS)


def test_usage_errors() -> None:
    tracker = TargetTracker()
    with pytest.raises(RuntimeError, match="before initialize"):
        tracker.update([], [], 0)
    with pytest.raises(ValueError, match="min_box_side_px"):
        tracker.initialize([0, 0, 0.5, 10], 0)
    tracker.initialize(box(100, 200), 0)
    tracker.clear()
    with pytest.raises(RuntimeError):
        tracker.update([], [], NS)
