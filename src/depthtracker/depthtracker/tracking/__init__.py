"""Tracking: batched Kalman filter, ByteTrack-style multi-object tracker, SAMURAI-style single-target tracker.

``MultiObjectTracker(TrackerConfig).update(Detections) -> Tracks`` for one camera stream; ``TargetTracker`` for the
single target (``initialize(box, stamp_ns)``, ``update(cand_boxes, cand_scores, stamp_ns) -> TargetState``).
"""

from depthtracker.tracking.config import TargetTrackerConfig, TrackerConfig
from depthtracker.tracking.kalman import CHI2_GATE, KalmanBoxFilter
from depthtracker.tracking.mot import MultiObjectTracker
from depthtracker.tracking.sot import TargetTracker

__all__ = [
    "CHI2_GATE",
    "KalmanBoxFilter",
    "MultiObjectTracker",
    "TargetTracker",
    "TargetTrackerConfig",
    "TrackerConfig",
]
