"""Multi-object tracker for one camera stream: batched Kalman filter + ByteTrack-style two-stage association.

Per ``update(detections)``:

1. **Clock.** ``dt`` comes from ``Detections.stamp_ns`` (velocities are pixels per second). Rule for ``dt <= 0``:
   a repeated stamp, or one older than the newest seen by at most ``max_backward_jump_s``, is processed with
   ``dt = 0`` (associate and correct, no prediction) and the clock keeps the newest stamp; a larger backward jump (a
   bag replayed from the start, a simulator reset) clears every track, as ROS clears its buffers on a time jump.
   Ids keep counting, so an id is never reused.
2. **Predict** every track (velocities that would drive the box size below ``min_box_side_px`` are zeroed first).
3. **Split** detections: high (``score >= high_score``) and low (``low_score <= score < high_score``); detections with
   a side below ``min_box_side_px`` are ignored.
4. **Stage 1:** confirmed and lost tracks (and tentative ones when ``tentative_first_stage``) vs high detections.
   **Stage 2:** confirmed tracks left over vs low detections. Unmatched confirmed tracks become *lost*.
   **Stage 3:** tentative tracks vs high detections left over; unmatched tentative tracks are removed. Cost
   ``1 - IoU`` (``1 - IoU x score`` when ``fuse_score``); pairs of different class (``class_aware``) or beyond the
   chi-square Mahalanobis gate (``gating``) are forbidden; solved by SciPy's ``linear_sum_assignment`` with a
   per-stage cost limit (``association.linear_assignment``).
5. **Correct** the matched tracks in one batched Kalman update. When ``Detections.sigmas`` is given, the measurement
   noise of each detection is its own (sigmas propagated to ``[cx, cy, a, h]``, floored at
   ``measurement_std_floor_px``) instead of the height-proportional default.
6. **Life cycle:** tentative -> confirmed after ``min_hits`` consecutive matches (at once on the first frame when
   ``confirm_first_frame``); confirmed -> lost when unmatched; lost -> confirmed when matched again; lost -> removed
   after ``max_lost_s`` without a match; tentative -> removed when unmatched; a lost track overlapping a matched
   track by more than ``duplicate_iou`` is a duplicate: the younger of the two is removed (ByteTrack).
7. **Birth:** high detections left over with ``score >= new_track_score`` start tentative tracks.

Ids are int64, unique per camera and never reused by a tracker: ``id = camera_id << 32 | n`` with ``n = 1, 2, ...``
counted by this tracker instance (no class-level counter), so ids of different cameras never collide and the camera
is ``id >> 32``. A tracker serves one camera: the first ``update`` (or the ``camera_id`` argument) binds it.
"""

from __future__ import annotations

import numpy as np

from depthtracker.geometry.boxes import xyxy_to_cxcyah
from depthtracker.tracking.association import iou_xyxy, linear_assignment
from depthtracker.tracking.config import TrackerConfig
from depthtracker.tracking.kalman import CHI2_GATE, KalmanBoxFilter
from depthtracker.types import Detections, Tracks, TrackState

__all__ = ["MultiObjectTracker", "ID_CAMERA_SHIFT", "measurement_var_from_sigmas"]

ID_CAMERA_SHIFT = 32  # id = camera_id << ID_CAMERA_SHIFT | counter
_MAX_COUNTER = (1 << ID_CAMERA_SHIFT) - 1
_MAX_CAMERA = (1 << (63 - ID_CAMERA_SHIFT)) - 1
_CONFIRMED, _LOST, _TENTATIVE = TrackState.CONFIRMED, TrackState.LOST, TrackState.TENTATIVE


def measurement_var_from_sigmas(sigmas: np.ndarray, z: np.ndarray, floor_px: float) -> np.ndarray:
    """(K, 4) variances of ``[cx, cy, a, h]`` from (K, 4) 1-sigma errors of ``[x1, y1, x2, y2]`` in pixels.

    First-order propagation with independent corner errors, keeping only the diagonal (the filter's R is diagonal):
    ``var cx = (s_x1^2 + s_x2^2) / 4``, ``var h = s_y1^2 + s_y2^2``, ``var w = s_x1^2 + s_x2^2``,
    ``var a = (var w + a^2 var h) / h^2``. Each corner sigma is floored at ``floor_px`` first.
    """
    s2 = np.maximum(np.asarray(sigmas, np.float64), floor_px) ** 2  # (K, 4)
    var_w = s2[:, 0] + s2[:, 2]
    var_h = s2[:, 1] + s2[:, 3]
    a, h = z[:, 2], z[:, 3]
    return np.stack([var_w / 4, var_h / 4, (var_w + a * a * var_h) / (h * h), var_h], axis=1)


# Life cycle by (state * 2 + matched): next state (tentative promotion by hits is applied after) and survival.
_NEXT_STATE = np.zeros(8, np.int8)
_SURVIVES = np.zeros(8, bool)
for _s, _m, _next, _alive in [(_TENTATIVE, 0, TrackState.REMOVED, False), (_TENTATIVE, 1, _CONFIRMED, True),
                              (_CONFIRMED, 0, _LOST, True), (_CONFIRMED, 1, _CONFIRMED, True),
                              (_LOST, 0, _LOST, True), (_LOST, 1, _CONFIRMED, True)]:
    _NEXT_STATE[_s * 2 + _m], _SURVIVES[_s * 2 + _m] = _next, _alive

# Columns of the per-track int64 table (one array, so that dropping or adding tracks is one operation).
# hits: consecutive matched frames; born/seen: stamps, ns; frame0: this tracker's frame count at birth (age = frames
# since, birth frame included); matches: frames matched in all (the birth detection included)
_ID, _LABEL, _HITS, _BORN, _SEEN, _FRAME0, _MATCHES = range(7)
_COLUMNS = 7


class MultiObjectTracker:
    """Tracks of one camera stream; see the module docstring for the algorithm and the id scheme.

    Args:
        config: the tracker's ``TrackerConfig`` (default: its defaults, as in ``config/tracking.yaml``).
        camera_id: bind the tracker to this camera now; by default the first ``update`` binds it.

    Attributes:
        tracks: every live track (tentative, confirmed, lost) after the last update, with its state.
    """

    def __init__(self, config: TrackerConfig | None = None, camera_id: int | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        if not isinstance(self.config, TrackerConfig):
            raise TypeError(f"MultiObjectTracker needs a TrackerConfig, got {type(self.config).__name__}")
        if camera_id is not None and not (isinstance(camera_id, int) and 0 <= camera_id <= _MAX_CAMERA):
            raise ValueError(f"camera_id must be an integer in [0, {_MAX_CAMERA}], got {camera_id!r}")
        self.camera_id = camera_id
        c = self.config
        self._gate = CHI2_GATE[c.gate_probability][2 if c.gate_only_position else 4]
        self._max_lost_ns = int(round(c.max_lost_s * 1e9))
        self._max_back_ns = int(round(c.max_backward_jump_s * 1e9))
        self._min_shape = np.array([1e-6, c.min_box_side_px])  # least aspect and height a prediction may reach
        self._counter = 0
        self.reset()

    # ---- state --------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Drop every track and the clock; the id counter continues (ids are never reused)."""
        self._kf = KalmanBoxFilter(**self.config.kalman_kwargs())
        self._meta = np.zeros((0, _COLUMNS), np.int64)  # columns _ID ... _MATCHES
        self._state = np.zeros(0, np.int8)
        self._score = np.zeros(0, np.float32)  # score of the last matched detection
        self._tracks_cache: Tracks | None = None
        self._stamp_ns: int | None = None
        self._frames = 0

    def _keep(self, keep: np.ndarray) -> None:
        self._kf.keep(keep)
        self._meta, self._state, self._score = self._meta[keep], self._state[keep], self._score[keep]

    @property
    def tracks(self) -> Tracks:
        """Every live track after the last update: ids, filtered boxes, velocities, last scores, labels, states."""
        if self._tracks_cache is None:
            self._tracks_cache = self._make_tracks(slice(None))
        return self._tracks_cache

    def _make_tracks(self, index: np.ndarray | slice) -> Tracks:
        meta = self._meta[index]
        bv = self._kf.boxes_and_velocities_xyxy(index).astype(np.float32)  # (K, 8) boxes | velocities
        return Tracks(meta[:, _ID], bv[:, :4], bv[:, 4:], self._score[index], meta[:, _LABEL], self._state[index],
                      self.camera_id or 0, self._stamp_ns or 0, ages=self._frames - meta[:, _FRAME0],
                      hits=meta[:, _MATCHES])

    # ---- one frame ----------------------------------------------------------------------------------------------
    def _advance_clock(self, stamp_ns: int) -> float:
        """Seconds to predict by (see the module docstring for the dt <= 0 rule)."""
        if self._stamp_ns is None:
            self._stamp_ns = stamp_ns
            return 0.0
        dt_ns = stamp_ns - self._stamp_ns
        if dt_ns >= 0:
            self._stamp_ns = stamp_ns
            return dt_ns * 1e-9
        if -dt_ns > self._max_back_ns:
            self.reset()
            self._stamp_ns = stamp_ns
        return 0.0

    def _bind(self, camera_id: int) -> None:
        if self.camera_id is None:
            if camera_id > _MAX_CAMERA:
                raise ValueError(f"camera_id must be <= {_MAX_CAMERA} to namespace track ids, got {camera_id}")
            self.camera_id = int(camera_id)
        elif camera_id != self.camera_id:
            raise ValueError(f"this MultiObjectTracker serves camera {self.camera_id}, got detections of camera "
                             f"{camera_id}: use one tracker per camera")

    @staticmethod
    def _match(cost: np.ndarray, trk: np.ndarray, det: np.ndarray, min_sim: float) -> tuple[np.ndarray, np.ndarray]:
        """Match tracks ``trk`` to detections ``det`` (index arrays into ``cost``); returns matched pairs."""
        if trk.size == 0 or det.size == 0:
            return trk[:0], det[:0]
        rows, cols = linear_assignment(cost[trk[:, None], det[None, :]], 1.0 - min_sim)
        return trk[rows], det[cols]

    def update(self, detections: Detections) -> Tracks:
        """Advance to ``detections.stamp_ns`` and associate; returns the confirmed tracks matched in this frame.

        Args:
            detections: this camera's ``Detections`` (boxes xyxy pixels, scores, labels, optional sigmas).

        Returns:
            ``Tracks`` of the confirmed tracks matched to a detection in this frame (boxes are the filtered
            states); ``self.tracks`` holds every live track.
        """
        if not isinstance(detections, Detections):
            raise TypeError(f"MultiObjectTracker.update needs depthtracker.types.Detections, "
                            f"got {type(detections).__name__}")
        c = self.config
        self._bind(detections.camera_id)
        dt = self._advance_clock(detections.stamp_ns)
        now = self._stamp_ns
        first = self._frames == 0
        self._frames += 1
        self._tracks_cache = None
        kf = self._kf

        # Predict; a velocity that would shrink a side below the minimum is zeroed (it cannot be right).
        if dt > 0.0 and len(kf):
            m = kf.mean
            shrink = m[:, 2:4] + dt * m[:, 6:8] < self._min_shape  # (N, 2) aspect, height
            if shrink.any():
                m[:, 6:8][shrink] = 0.0
            kf.predict(dt)

        boxes = detections.boxes.astype(np.float64)
        scores = detections.scores
        labels = detections.labels
        usable = (boxes[:, 2:] - boxes[:, :2] >= c.min_box_side_px).all(axis=1)
        if usable.all():
            z = xyxy_to_cxcyah(boxes)
        else:  # a zero-height box has an infinite aspect: such detections never take part, give them a dummy
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(usable[:, None], xyxy_to_cxcyah(boxes), 1.0)
        r = None
        if detections.sigmas is not None:
            r = measurement_var_from_sigmas(detections.sigmas, z, c.measurement_std_floor_px)
        is_high = usable & (scores >= c.high_score)
        high = is_high.nonzero()[0]

        # Costs of every (track, detection) pair, built once; each stage takes its block.
        state = self._state
        meta = self._meta
        matched = np.zeros(len(state), bool)
        det_free = is_high.copy()  # high detections not taken yet
        trk = det = sim = None
        if len(state) and len(scores):
            sim = iou_xyxy(kf.boxes_xyxy(), boxes)  # (N, D)
            if c.gating:
                sim[kf.gating_distance(z, slice(None), r, c.gate_only_position) > self._gate] = -np.inf
            if c.class_aware:
                sim[meta[:, _LABEL, None] != labels[None, :]] = -np.inf
            cost = 1.0 - sim  # forbidden pairs: inf
            fused = 1.0 - sim * scores if c.fuse_score else cost  # score 0 x -inf = NaN: still forbidden
            confirmed = state == _CONFIRMED
            # Stage 1: confirmed + lost tracks, high detections.
            pool1 = np.arange(len(state)) if c.tentative_first_stage else (state != _TENTATIVE).nonzero()[0]
            t1, d1 = self._match(fused, pool1, high, c.match_iou_high)
            matched[t1] = True
            # Stage 2: confirmed tracks left over, low detections (IoU only: low scores would sink a fused value).
            low = (usable & ~is_high & (scores >= c.low_score)).nonzero()[0]
            t2, d2 = self._match(cost, (confirmed & ~matched).nonzero()[0], low, c.match_iou_low)
            matched[t2] = True
            det_free[d1] = False
            # Stage 3: tentative tracks, high detections left over.
            t3, d3 = self._match(fused, (state == _TENTATIVE).nonzero()[0], high[det_free[high]],
                                 c.match_iou_tentative)
            matched[t3] = True
            det_free[d3] = False
            trk = np.concatenate([t1, t2, t3])
            det = np.concatenate([d1, d2, d3])
            kf.update(trk, z[det], None if r is None else r[det])
            self._score[trk] = scores[det]
            if not c.class_aware:
                meta[trk, _LABEL] = labels[det]
            meta[trk, _SEEN] = now
            meta[trk, _MATCHES] += 1

        # Life cycle: a table maps (state, matched) to the next state and to survival (module docstring, step 6).
        hits = meta[:, _HITS]
        hits += 1
        hits[~matched] = 0
        code = state * 2 + matched  # (N,) int
        new_state = _NEXT_STATE[code]
        new_state[(code == 2 * _TENTATIVE + 1) & (hits < c.min_hits)] = _TENTATIVE
        alive = _SURVIVES[code]
        alive[new_state == _LOST] &= now - meta[new_state == _LOST, _SEEN] <= self._max_lost_ns
        self._state = new_state
        if trk is not None and trk.size and c.duplicate_iou < 1.0:
            self._drop_duplicates(sim, trk, det, alive)
        if not alive.all():
            self._keep(alive)
            matched = matched[alive]

        # Birth.
        born = high[det_free[high] & (scores[high] >= c.new_track_score)]
        if born.size:
            matched = np.concatenate([matched, np.ones(born.size, bool)])
            self._birth(born, z, r, scores, labels, now, first)
        return self._make_tracks((matched & (self._state == _CONFIRMED)).nonzero()[0])

    def _birth(self, born: np.ndarray, z: np.ndarray, r: np.ndarray | None, scores: np.ndarray, labels: np.ndarray,
               now: int, first: bool) -> None:
        """Append one track per detection index in ``born``."""
        c = self.config
        n = born.size
        if self._counter + n > _MAX_COUNTER:
            raise RuntimeError(f"track id counter of camera {self.camera_id} exhausted ({_MAX_COUNTER} ids)")
        meta = np.empty((n, _COLUMNS), np.int64)
        meta[:, _ID] = (self.camera_id << ID_CAMERA_SHIFT) | np.arange(self._counter + 1, self._counter + n + 1)
        meta[:, _LABEL] = labels[born]
        meta[:, _HITS] = 1
        meta[:, _BORN] = meta[:, _SEEN] = now
        meta[:, _FRAME0] = self._frames - 1  # update() has counted this frame already: age 1 at birth
        meta[:, _MATCHES] = 1
        self._counter += n
        kf = self._kf
        kf.initiate(z[born])
        if r is not None:  # the prior's position variance must not be below the detection's own
            kf.pp[-n:] = np.maximum(kf.pp[-n:], r[born])
        confirm = (first and c.confirm_first_frame) or c.min_hits <= 1
        self._meta = np.concatenate([self._meta, meta])
        self._state = np.concatenate([self._state, np.full(n, _CONFIRMED if confirm else _TENTATIVE, np.int8)])
        self._score = np.concatenate([self._score, scores[born]])

    def _drop_duplicates(self, iou: np.ndarray, trk: np.ndarray, det: np.ndarray, alive: np.ndarray) -> None:
        """Clear ``alive`` for the younger of each (lost track, track matched this frame) pair whose boxes (the lost
        track's prediction, the other's detection) overlap by more than ``duplicate_iou``: two tracks on one object."""
        lost = ((self._state == _LOST) & alive).nonzero()[0]
        if lost.size == 0:
            return
        act = self._state[trk] == _CONFIRMED
        trk, det = trk[act], det[act]
        b, a = np.nonzero(iou[lost[:, None], det[None, :]] > self.config.duplicate_iou)
        if a.size:
            a, b = trk[a], lost[b]
            born = self._meta[:, _BORN]
            younger_active = born[a] > born[b]
            alive[a[younger_active]] = False
            alive[b[~younger_active]] = False
