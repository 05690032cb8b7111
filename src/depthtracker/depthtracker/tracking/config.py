"""Configs of the tracking components: ``TrackerConfig`` (multi-object) and ``TargetTrackerConfig`` (single target).

Frozen dataclasses mirrored field for field by ``config/tracking.yaml`` and ``config/target.yaml`` (ROS params
layout; ``configio.load_config(TrackerConfig, name="tracking")``). Every behavioural number of the trackers is a field
here; ``__post_init__`` raises ``ValueError`` naming the field, the value and the allowed range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from depthtracker.tracking.kalman import CHI2_GATE

__all__ = ["TrackerConfig", "TargetTrackerConfig"]


def _check(owner: str, name: str, value: object, lo: float, hi: float, lo_open: bool = False,
           hi_open: bool = False, integer: bool = False) -> None:
    """Raise ValueError unless ``lo <(=) value <(=) hi`` (and an int when ``integer``)."""
    kind = (int,) if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        what = "an integer" if integer else "a number"
        raise ValueError(f"{owner}.{name} must be {what} in {rng}, got {value!r}")


def _check_bool(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{owner}.{name} must be true or false, got {value!r}")


_KALMAN_FIELDS = ("std_weight_position", "std_weight_velocity", "std_aspect", "std_aspect_velocity",
                  "std_aspect_measurement", "init_position_factor", "init_velocity_factor", "reference_dt_s")


def _check_kalman(owner: str, cfg: object) -> None:
    for name in _KALMAN_FIELDS:
        _check(owner, name, getattr(cfg, name), 0.0, 1e6, lo_open=True)
    _check(owner, "reference_dt_s", cfg.reference_dt_s, 0.0, 10.0, lo_open=True)


@dataclass(frozen=True)
class TrackerConfig:
    """``MultiObjectTracker``: ByteTrack-style association, track life cycle, Kalman noise (tracking.kalman)."""

    # -- detection split and association (ByteTrack's two stages, then tentative tracks) --
    high_score: float = 0.5  # detections scoring >= this take part in stage 1 (all tracks) and may start tracks
    low_score: float = 0.1  # detections scoring in [low_score, high_score) only extend confirmed tracks (stage 2)
    new_track_score: float = 0.6  # an unmatched high detection scoring >= this starts a tentative track
    match_iou_high: float = 0.2  # stage 1 (confirmed + lost tracks, high detections): least IoU (x score if fused)
    match_iou_low: float = 0.5  # stage 2 (confirmed tracks left over, low detections): least IoU
    match_iou_tentative: float = 0.3  # stage 3 (tentative tracks, high detections left over): least IoU (x score)
    tentative_first_stage: bool = False  # tentative tracks compete in stage 1 too (else only in stage 3, ByteTrack)
    fuse_score: bool = True  # stages 1 and 3 rank pairs by IoU x detection score (ByteTrack), else by IoU
    class_aware: bool = True  # never match a track to a detection of another class
    gating: bool = True  # reject pairs whose Mahalanobis distance exceeds the chi-square gate
    gate_probability: float = 0.99  # chi-square gate quantile: 0.95, 0.99 or 0.999 (table in tracking.kalman)
    gate_only_position: bool = True  # gate on the centre only (2 dof): box shape jitters more than the centre
    measurement_std_floor_px: float = 1.0  # floor of a detection's sigma (Detections.sigmas) in pixels
    # -- track life cycle --
    min_hits: int = 2  # consecutive matched frames that confirm a tentative track (1 = confirm at birth)
    confirm_first_frame: bool = True  # tracks born on the first frame are confirmed at once (ByteTrack)
    max_lost_s: float = 1.0  # a lost (confirmed, unmatched) track is removed after this long without a match, seconds
    duplicate_iou: float = 0.85  # a lost track overlapping a matched one above this IoU is dropped (the younger goes)
    min_box_side_px: float = 1.0  # detections narrower or lower than this are ignored, pixels
    max_backward_jump_s: float = 1.0  # a stamp older than the newest by more than this resets the tracker, seconds
    # -- Kalman filter (tracking.kalman): std weights per frame period reference_dt_s (ByteTrack's but the aspect) --
    std_weight_position: float = 1.0 / 20  # position noise std as a fraction of box height
    std_weight_velocity: float = 1.0 / 160  # velocity noise std as a fraction of box height, per reference frame
    std_aspect: float = 0.03  # aspect-ratio process noise std (unitless; ByteTrack 0.01, too stiff for walkers)
    std_aspect_velocity: float = 1e-5  # aspect-ratio velocity noise std, per reference frame
    std_aspect_measurement: float = 0.03  # aspect-ratio measurement noise std (unitless; ByteTrack 0.1)
    init_position_factor: float = 2.0  # initial position std = this x position noise std
    init_velocity_factor: float = 10.0  # initial velocity std = this x velocity noise std
    reference_dt_s: float = 1.0 / 30  # frame period the std weights are tuned for, seconds

    def __post_init__(self) -> None:
        o = "TrackerConfig"
        for name in ("high_score", "low_score", "new_track_score", "match_iou_high", "match_iou_low",
                     "match_iou_tentative"):
            _check(o, name, getattr(self, name), 0.0, 1.0)
        if self.low_score > self.high_score:
            raise ValueError(f"{o}.low_score must be <= high_score ({self.high_score}), got {self.low_score}")
        if self.new_track_score < self.high_score:
            raise ValueError(f"{o}.new_track_score must be >= high_score ({self.high_score}), "
                             f"got {self.new_track_score}")
        for name in ("tentative_first_stage", "fuse_score", "class_aware", "gating", "gate_only_position",
                     "confirm_first_frame"):
            _check_bool(o, name, getattr(self, name))
        if self.gate_probability not in CHI2_GATE:
            raise ValueError(f"{o}.gate_probability must be one of {sorted(CHI2_GATE)}, got {self.gate_probability!r}")
        _check(o, "measurement_std_floor_px", self.measurement_std_floor_px, 0.0, 1e4, lo_open=True)
        _check(o, "min_hits", self.min_hits, 1, 1000, integer=True)
        _check(o, "max_lost_s", self.max_lost_s, 0.0, 3600.0)
        _check(o, "duplicate_iou", self.duplicate_iou, 0.0, 1.0, lo_open=True)
        _check(o, "min_box_side_px", self.min_box_side_px, 0.0, 1e4, lo_open=True)
        _check(o, "max_backward_jump_s", self.max_backward_jump_s, 0.0, 3600.0)
        _check_kalman(o, self)

    def kalman_kwargs(self) -> dict[str, float]:
        """The ``KalmanBoxFilter`` keyword arguments held by this config."""
        return {name: getattr(self, name) for name in _KALMAN_FIELDS}


@dataclass(frozen=True)
class TargetTrackerConfig:
    """``TargetTracker``: SAMURAI-style motion-aware selection, update gates, occlusion and recovery."""

    # SAMURAI's 0.15 / 15 frames let a near-identical neighbour win the first frames on model score alone; chosen on
    # validation seeds 100-104 (40 sequences, DepthTrack edge): AUC 0.793 (0.15 / 15) -> 0.817 (0.3 / 0, same at 0.5)
    kf_score_weight: float = 0.3  # selection score = w x IoU(Kalman box, candidate) + (1 - w) x model score
    stable_frames: int = 0  # consecutive motion-consistent frames before the Kalman term joins the selection
    stable_iou: float = 0.3  # a selected candidate is motion-consistent when its IoU with the prediction is >= this
    presence_score: float = 0.3  # candidates scoring below this are ignored (target absent / occluded)
    # 0.6 rejected the right candidate (scores 0.51-0.59) of small, fast targets once the prediction had drifted off
    # them; chosen on 10 s validation bags, seeds 110-114 (40 sequences of up to 50 frames): AUC 0.754 (0.6) -> 0.831
    # (0.45, the same at 0.3-0.4), unchanged on seeds 100-104 (bench/results/sot_selection.md)
    recovery_score: float = 0.45  # a motion-inconsistent candidate is taken (filter re-started there) only above this
    memory_score_gate: float = 0.5  # memory-bank update allowed when the selected score is >= this ...
    memory_iou_gate: float = 0.3  # ... and (once stable) its IoU with the prediction is >= this
    template_score_gate: float = 0.8  # template update allowed when stable, score >= this ...
    template_iou_gate: float = 0.5  # ... and IoU with the prediction >= this
    max_occlusion_s: float = 3.0  # the target is declared lost after this long without an accepted candidate, s
    min_box_side_px: float = 1.0  # candidates narrower or lower than this are ignored, pixels
    # -- Kalman filter (tracking.kalman), as in TrackerConfig --
    std_weight_position: float = 1.0 / 20  # position noise std as a fraction of box height
    std_weight_velocity: float = 1.0 / 160  # velocity noise std as a fraction of box height, per reference frame
    std_aspect: float = 0.03  # aspect-ratio process noise std (unitless)
    std_aspect_velocity: float = 1e-5  # aspect-ratio velocity noise std, per reference frame
    std_aspect_measurement: float = 0.03  # aspect-ratio measurement noise std (unitless)
    init_position_factor: float = 2.0  # initial position std = this x position noise std
    init_velocity_factor: float = 10.0  # initial velocity std = this x velocity noise std
    reference_dt_s: float = 1.0 / 30  # frame period the std weights are tuned for, seconds

    def __post_init__(self) -> None:
        o = "TargetTrackerConfig"
        for name in ("kf_score_weight", "stable_iou", "presence_score", "recovery_score", "memory_score_gate",
                     "memory_iou_gate", "template_score_gate", "template_iou_gate"):
            _check(o, name, getattr(self, name), 0.0, 1.0)
        _check(o, "stable_frames", self.stable_frames, 0, 100000, integer=True)
        _check(o, "max_occlusion_s", self.max_occlusion_s, 0.0, 3600.0)
        _check(o, "min_box_side_px", self.min_box_side_px, 0.0, 1e4, lo_open=True)
        if self.recovery_score < self.presence_score:
            raise ValueError(f"{o}.recovery_score must be >= presence_score ({self.presence_score}), "
                             f"got {self.recovery_score}")
        _check_kalman(o, self)

    def kalman_kwargs(self) -> dict[str, float]:
        """The ``KalmanBoxFilter`` keyword arguments held by this config."""
        return {name: getattr(self, name) for name in _KALMAN_FIELDS}
