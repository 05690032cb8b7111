"""Single-target tracker: SAMURAI-style motion-aware selection among a model's candidate boxes.

The tracking model (``/target/measurement``) proposes K candidate boxes with scores for the target each frame; this
class chooses one, keeps a Kalman motion model of the target (``tracking.kalman``, one row), and tells the model
whether this frame may enter its memory bank or replace its template. After SAMURAI (Yang et al. 2024,
"SAMURAI: Adapting Segment Anything Model for Zero-Shot Visual Tracking with Motion-Aware Memory"):

* **Selection.** Candidates scoring below ``presence_score`` are ignored. While the motion model is young (fewer
  than ``stable_frames`` consecutive motion-consistent frames) the best model score wins; once stable, the winner
  maximises ``kf_score_weight x IoU(predicted box, candidate) + (1 - kf_score_weight) x score``. SAMURAI uses
  0.15 after 15 frames; our defaults are 0.3 from the first frame (``stable_frames = 0``), since the box given to
  ``initialize`` is a sure position and a near-identical neighbour otherwise wins the first frames on score alone
  (validation figures at the config field).
* **Motion consistency.** The winner is consistent when its IoU with the prediction is >= ``stable_iou``; it then
  corrects the filter and extends the stable run. While young, an inconsistent winner still corrects the filter
  (the model is trusted; the run restarts). Once stable, an inconsistent winner is accepted only with
  ``score >= recovery_score`` and then *re-starts* the filter at the candidate (recovery after an occlusion or a
  fast move, when the prediction has gone stale); a weaker one is treated as a distractor and ignored.
* **Occlusion.** With no accepted candidate the box is the motion prediction and ``occluded`` is set; after
  ``max_occlusion_s`` without one, ``tracking`` turns false and stays so until ``initialize`` is called again.
* **Update gates** (for the model's memory): ``memory_update_ok`` when the accepted score is >= ``memory_score_gate``
  and, once stable, its IoU with the prediction >= ``memory_iou_gate``; ``template_update_ok`` only when stable,
  consistent with score >= ``template_score_gate`` and IoU >= ``template_iou_gate``. Occluded frames and recovery
  frames (a restart far from the prediction) update neither.

Time: ``dt`` from ``stamp_ns``; a stamp not newer than the last is processed with ``dt = 0`` and the clock keeps the
newest stamp.
"""

from __future__ import annotations

import numpy as np

from depthtracker.geometry.boxes import xyxy_to_cxcyah
from depthtracker.tracking.association import iou_xyxy
from depthtracker.tracking.config import TargetTrackerConfig
from depthtracker.tracking.kalman import KalmanBoxFilter
from depthtracker.types import TargetState

__all__ = ["TargetTracker", "validate_candidates"]


def validate_candidates(boxes: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    """Check candidate arrays from outside the core types: (K, 4) finite xyxy boxes with x1 <= x2, y1 <= y2 and
    (K,) finite scores. Returns float64 copies; raises ``ValueError`` naming the offending rows."""
    b = np.array(boxes, np.float64, copy=True)
    s = np.array(scores, np.float64, copy=True)
    if b.size == 0 and s.size == 0:
        return b.reshape(0, 4), s.reshape(0)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"candidate boxes must have shape (K, 4), got {b.shape}")
    if s.shape != (b.shape[0],):
        raise ValueError(f"candidate scores must have shape ({b.shape[0]},), got {s.shape}")
    bad = ~np.isfinite(b).all(axis=1)
    if bad.any():
        raise ValueError(f"candidate boxes have NaN or inf values in rows {np.flatnonzero(bad).tolist()}")
    bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        raise ValueError(f"candidate boxes have negative width or height in rows {np.flatnonzero(bad).tolist()} "
                         "(expected x1<=x2, y1<=y2)")
    bad = ~np.isfinite(s)
    if bad.any():
        raise ValueError(f"candidate scores have NaN or inf values in rows {np.flatnonzero(bad).tolist()}")
    return b, s


class TargetTracker:
    """The single target of one camera (see the module docstring).

    Attributes (after each ``update``):
        memory_update_ok: the accepted candidate may enter the model's memory bank.
        template_update_ok: the accepted candidate may replace the model's template.
        selected_index: index of the accepted candidate, or None.
    """

    def __init__(self, config: TargetTrackerConfig | None = None) -> None:
        self.config = config if config is not None else TargetTrackerConfig()
        if not isinstance(self.config, TargetTrackerConfig):
            raise TypeError(f"TargetTracker needs a TargetTrackerConfig, got {type(self.config).__name__}")
        self._kf: KalmanBoxFilter | None = None
        self.camera_id = 0
        self._stamp_ns = 0
        self._seen_ns = 0
        self._stable = 0
        self._tracking = False
        self.memory_update_ok = False
        self.template_update_ok = False
        self.selected_index: int | None = None

    @property
    def active(self) -> bool:
        """True between ``initialize`` and ``clear`` while the target is held (not lost)."""
        return self._kf is not None and self._tracking

    def _start(self, box: np.ndarray) -> None:
        self._kf = KalmanBoxFilter(**self.config.kalman_kwargs())
        self._kf.initiate(xyxy_to_cxcyah(box[None]))

    def initialize(self, box: object, stamp_ns: int, camera_id: int = 0) -> TargetState:
        """Start tracking the target at ``box`` (4,) xyxy pixels at ``stamp_ns``; returns its state."""
        b, _ = validate_candidates(np.reshape(np.asarray(box, np.float64), (1, 4)), [1.0])
        b = b[0]
        if min(b[2] - b[0], b[3] - b[1]) < self.config.min_box_side_px:
            raise ValueError(f"target box {b.tolist()} is smaller than min_box_side_px={self.config.min_box_side_px}")
        self._start(b)
        self.camera_id = int(camera_id)
        self._stamp_ns = self._seen_ns = int(stamp_ns)
        self._stable = 0
        self._tracking = True
        self.memory_update_ok = self.template_update_ok = True
        self.selected_index = None
        return self._state(1.0, occluded=False)

    def clear(self) -> None:
        """Stop tracking (``/target/clear``)."""
        self._kf = None
        self._tracking = False

    def _state(self, score: float, occluded: bool) -> TargetState:
        kf = self._kf
        vel = kf.velocities_xyxy()[0] if self._tracking else np.zeros(4)
        return TargetState(kf.boxes_xyxy()[0].astype(np.float32), vel.astype(np.float32), float(score),
                           self.camera_id, self._stamp_ns, tracking=self._tracking, occluded=occluded)

    def update(self, cand_boxes: object, cand_scores: object, stamp_ns: int) -> TargetState:
        """Choose among the model's candidates for the frame at ``stamp_ns``.

        Args:
            cand_boxes: (K, 4) xyxy pixel boxes proposed by the model (K may be 0).
            cand_scores: (K,) their confidences in [0, 1].
            stamp_ns: image stamp, nanoseconds.

        Returns:
            ``TargetState``: the filtered box (the prediction when occluded), velocity in px/s, the accepted score
            (0 when none), ``tracking`` and ``occluded`` flags.
        """
        if self._kf is None:
            raise RuntimeError("TargetTracker.update called before initialize (or after clear)")
        boxes, scores = validate_candidates(cand_boxes, cand_scores)
        c = self.config
        self.memory_update_ok = self.template_update_ok = False
        self.selected_index = None
        dt_ns = int(stamp_ns) - self._stamp_ns
        self._stamp_ns = max(self._stamp_ns, int(stamp_ns))
        if not self._tracking:
            return self._state(0.0, occluded=True)
        kf = self._kf
        if dt_ns > 0:
            dt = dt_ns * 1e-9
            m = kf.mean
            if m[0, 3] + dt * m[0, 7] < c.min_box_side_px:
                m[0, 7] = 0.0
            if m[0, 2] + dt * m[0, 6] <= 0.0:
                m[0, 6] = 0.0
            kf.predict(dt)
        wh = boxes[:, 2:] - boxes[:, :2]
        idx = np.flatnonzero((scores >= c.presence_score) & (wh >= c.min_box_side_px).all(axis=1))
        accepted = False
        if idx.size:
            iou = iou_xyxy(kf.boxes_xyxy(), boxes[idx])[0]  # (K',)
            stable = self._stable >= c.stable_frames
            sel = c.kf_score_weight * iou + (1.0 - c.kf_score_weight) * scores[idx] if stable else scores[idx]
            j = int(np.argmax(sel))
            k, s, kf_iou = int(idx[j]), float(scores[idx[j]]), float(iou[j])
            z = xyxy_to_cxcyah(boxes[k][None])
            consistent = kf_iou >= c.stable_iou
            if consistent or not stable:
                kf.update(np.array([0]), z)
                self._stable = self._stable + 1 if consistent else 0
                accepted = True
            elif s >= c.recovery_score:
                self._start(boxes[k])
                self._stable = 0
                accepted = True
            if accepted:
                self.selected_index = k
                self.memory_update_ok = s >= c.memory_score_gate and (not stable or kf_iou >= c.memory_iou_gate)
                self.template_update_ok = (stable and consistent and s >= c.template_score_gate
                                           and kf_iou >= c.template_iou_gate)
        if accepted:
            self._seen_ns = self._stamp_ns
            return self._state(s, occluded=False)
        if self._stamp_ns - self._seen_ns > c.max_occlusion_s * 1e9:
            self._tracking = False
        return self._state(0.0, occluded=True)
