"""Tracking node: ``detections`` (+ ``depth_heatmap``, ``target/*``) -> ``tracks`` and ``/diagnostics``.

Subscriptions (relative names: remap or namespace them; all reliable, as the perception node's outputs are):

* ``detections`` (``depthtracker_msgs/DetectionArray``): one ``MultiObjectTracker`` per camera, created the first
  time the camera is seen. Every camera listed in ``camera_headers`` is advanced to *its own* image stamp, with its
  detections or none, so a camera with no detections still ages its tracks (they turn LOST, then REMOVED). The
  camera of a header is the ``camera_id`` its ``frame_id`` was seen with in a ``Detection``, else the number in a
  ``camN...`` frame name, else its position (``tracking.fusion.camera_of_frame``). An array without
  ``camera_headers`` is read as one frame per camera present in its detections, at ``header.stamp``.
* ``depth_heatmap`` (``sensor_msgs/Image`` 32FC1 metres, one per camera, header = that camera's image header;
  parameter ``use_depth``): kept in a buffer of ``depth_buffer`` maps per frame_id keyed by stamp. A track's
  ``depth`` is the median of the finite depths inside its box in the heatmap of the *same* stamp and frame_id,
  NaN when that heatmap had not arrived when the detections were processed. A heatmap that cannot be read (not
  32FC1, sizes that do not add up) is counted (``bad_heatmaps`` on /diagnostics), logged once and skipped.
* ``target/set`` (``TargetRequest``): start the single target at a box in one camera; ``target/clear``
  (``std_msgs/Empty``) stops it; ``target/measurement`` (``TargetMeasurement``): the model's candidates, fed to the
  ``TargetTracker`` (measurements of another camera, or inactive ones, are ignored and counted); a detection set of
  the target's camera waits up to ``depth_wait_s`` for the measurement of its stamp, so the target track published
  with a set is the one measured on that set's image. With
  ``target_source: detections`` the target camera's detections serve as the candidates instead (a graph without
  a tracking model).

Arrays the perception node sent that this node never took (overwritten in the subscription's queue while the node
was behind) are counted from the publisher's sequence numbers as ``detections_missed`` on ``/diagnostics`` (WARN:
each one is a frame the trackers skipped). ``detections_publishers`` on ``/diagnostics`` is the number of publishers
the ``detections`` subscription has matched, its side of the match: 0 while the perception node runs means this node
does not hear it (another namespace or domain, incompatible QoS, or a middleware discovery stall), and no detection
will reach the trackers; the log says so too once it has lasted ``unheard_warn_s`` (30 s: the perception node takes
seconds to load its models).

Publication ``tracks`` (``TrackArray``): one message per DetectionArray, its header copied; per camera of the set
its confirmed and lost tracks (tentative ones with ``publish_tentative``), then the ones gone since the previous
frame once with state REMOVED. Track ids are ``camera_id << 32 | n``. The target, while held, is one more track
of its camera with the reserved id ``camera_id << 32 | 0``, ``is_target`` true, ``class_id`` -1 and its Kalman box
(``tracking.fusion``); no multi-object track is flagged.

Parameters: every ``TrackerConfig`` field under its own name (``config/tracking.yaml`` is a params file for this
node), every ``TargetTrackerConfig`` field under ``target.`` and the node's own below; all read-only and validated
at start-up: a bad value logs a fatal message naming it and exits with status 2.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Empty

from depthtracker.data.images import ImageEncodingError, image_to_array
from depthtracker.ros.conversions import detections_from_msgs, diagnostic_status, stamp_from_msg, tracks_to_msg
from depthtracker.ros.params import declare_from_dataclass
from depthtracker.ros.qos import MissedMessages, output_qos
from depthtracker.ros.runtime import run_node
from depthtracker.tracking import MultiObjectTracker, TargetTracker, TargetTrackerConfig, TrackerConfig
from depthtracker.tracking.fusion import (
    StampedBuffer,
    TrackView,
    camera_of_frame,
    concat_tracks,
    target_track,
    with_depths,
)
from depthtracker.types import Detections, TargetState
from depthtracker_msgs.msg import DetectionArray, TargetMeasurement, TargetRequest, TrackArray

TARGET_SOURCES = ("measurement", "detections")


class TrackingNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("tracking", **kwargs)
        self.tracker_config = declare_from_dataclass(self, TrackerConfig)
        self.target_config = declare_from_dataclass(self, TargetTrackerConfig, prefix="target.")
        self.declare_parameter("use_depth", True, ParameterDescriptor(
            description="subscribe to depth_heatmap and fill each track's median depth", read_only=True))
        self.declare_parameter("depth_buffer", 8, ParameterDescriptor(
            description="heatmaps kept per camera, waiting for the detections of the same stamp", read_only=True,
            integer_range=[IntegerRange(from_value=1, to_value=1000, step=1)]))
        self.declare_parameter("depth_wait_s", 0.1, ParameterDescriptor(
            description="how long a detection set waits for the depth_heatmap of each of its cameras and for the "
                        "target's measurement of the same stamp (DDS delivers topics in no fixed order); an input "
                        "missing 3 sets in a row is no longer waited for until one arrives, s",
            read_only=True, floating_point_range=[FloatingPointRange(from_value=0.0, to_value=5.0, step=0.0)]))
        self.declare_parameter("publish_tentative", False, ParameterDescriptor(
            description="also publish tentative (unconfirmed) tracks", read_only=True))
        self.declare_parameter("target_source", "measurement", ParameterDescriptor(
            description=f"candidates of the single target, one of {list(TARGET_SOURCES)}", read_only=True))
        self.declare_parameter("diagnostics_period_s", 1.0, ParameterDescriptor(
            description="period of /diagnostics messages, s", read_only=True,
            floating_point_range=[FloatingPointRange(from_value=0.1, to_value=60.0, step=0.0)]))
        self.declare_parameter("unheard_warn_s", 30.0, ParameterDescriptor(
            description="warn on the log when 'detections' has had no publisher this long since start-up or since "
                        "its last publisher left, s (0: never); the perception node takes seconds to load its models",
            read_only=True, floating_point_range=[FloatingPointRange(from_value=0.0, to_value=3600.0, step=0.0)]))
        self.unheard_warn_s = float(self.get_parameter("unheard_warn_s").value)
        # since when 'detections' has had no publisher (None: it has one)
        self._unheard_since: float | None = time.monotonic()
        self.target_source = self.get_parameter("target_source").value
        if self.target_source not in TARGET_SOURCES:
            raise ValueError(f"parameter target_source must be one of {list(TARGET_SOURCES)}, "
                             f"got {self.target_source!r}")
        self.use_depth = bool(self.get_parameter("use_depth").value)
        self._depth_capacity = int(self.get_parameter("depth_buffer").value)
        self._depth_wait_s = float(self.get_parameter("depth_wait_s").value)
        # Detection sets waiting for heatmaps, in arrival order (processed strictly in that order).
        self._pending: collections.deque[tuple[float, DetectionArray]] = collections.deque()
        self._heatmap_misses: collections.Counter[str] = collections.Counter()  # consecutive, per frame_id
        self.publish_tentative = bool(self.get_parameter("publish_tentative").value)

        self._trackers: dict[int, MultiObjectTracker] = {}
        self._views: dict[int, TrackView] = {}
        self._frame_cam: dict[str, int] = {}
        self._depths: dict[str, StampedBuffer] = {}
        self._target = TargetTracker(self.target_config)
        self._target_state: TargetState | None = None
        self._target_init_ns = 0  # stamp of the target request's image
        self._measured_ns = 0  # stamp of the newest measurement applied to the target
        self._measurement_misses = 0  # sets processed without their measurement in a row (3: stop waiting)
        self.counts = collections.Counter()
        self._missed = MissedMessages()  # detection arrays the perception node sent that this node never took
        self._proc_s = 0.0
        self._proc_max_s = 0.0
        self._t0 = time.monotonic()

        qos = output_qos()
        self._tracks_pub = self.create_publisher(TrackArray, "tracks", qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos)
        self._detections_publishers = 0  # publishers the detections subscription has matched (its side of the match)
        events = SubscriptionEventCallbacks(matched=self._on_detections_matched)
        self.create_subscription(DetectionArray, "detections", self._on_detections, qos, event_callbacks=events)
        self.create_subscription(TargetMeasurement, "target/measurement", self._on_measurement, qos)
        self.create_subscription(TargetRequest, "target/set", self._on_target_set, qos)
        self.create_subscription(Empty, "target/clear", self._on_target_clear, qos)
        if self.use_depth:
            self.create_subscription(Image, "depth_heatmap", self._on_heatmap, qos)
        # re-checks waiting sets every 10 ms; cancelled while nothing waits (an idle node costs no wake-ups)
        self._flush_timer = self.create_timer(0.01, self._flush)
        self.create_timer(float(self.get_parameter("diagnostics_period_s").value), self._diagnostics)
        self.get_logger().info(f"tracking: use_depth={self.use_depth}, target_source={self.target_source}, "
                               f"publish_tentative={self.publish_tentative}")

    # -- inputs ------------------------------------------------------------------------------------------------------
    def _on_detections_matched(self, info: Any) -> None:
        self._detections_publishers = int(info.current_count)
        if self._detections_publishers == 0:
            self._unheard_since = self._unheard_since or time.monotonic()
        else:
            self._unheard_since = None

    def _warn_unheard(self) -> None:
        """Say on the log, not only on /diagnostics, when no perception node is heard (not running, another
        namespace or domain, or never discovered by the middleware)."""
        if self._unheard_since is None or self.unheard_warn_s <= 0:
            return
        since = time.monotonic() - self._unheard_since
        if since >= self.unheard_warn_s:
            self.get_logger().warning(
                f"no publisher on {self.resolve_topic_name('detections')} for {since:.0f} s: is the perception node "
                "running, in this namespace and ROS_DOMAIN_ID? (/diagnostics: detections_publishers)",
                throttle_duration_sec=30.0)

    def _on_heatmap(self, msg: Image) -> None:
        try:
            if msg.encoding != "32FC1":
                raise ImageEncodingError(f"depth_heatmap must be 32FC1 metres, got encoding {msg.encoding!r}")
            depth = image_to_array(msg, "depth_heatmap")
        except ImageEncodingError as exc:
            self.counts["bad_heatmaps"] += 1
            self.get_logger().warning(f"skipping an unreadable depth_heatmap ({exc}); further ones are counted "
                                      "on /diagnostics", once=True)
            return
        frame = msg.header.frame_id
        if frame not in self._depths:
            self._depths[frame] = StampedBuffer(self._depth_capacity)
        self._depths[frame].put(stamp_from_msg(msg.header.stamp), frame, depth)
        self.counts["heatmaps"] += 1
        self._heatmap_misses[frame] = 0
        self._flush()

    def _heatmaps_ready(self, msg: DetectionArray) -> bool:
        """Every camera of the set that is still waited for has the heatmap of this stamp, and the target's
        measurement of this stamp is in (when the target is held in one of the set's cameras)."""
        frames = self._camera_frames(msg)
        if self.use_depth and not all(self._depth_for(stamp, frame, count=False) is not None
                                      for _, stamp, frame in frames if self._heatmap_misses[frame] < 3):
            return False
        return self._measurement_ready(frames)

    def _measurement_ready(self, frames: list[tuple[int, int, str]]) -> bool:
        st = self._target_state
        if st is None or not st.tracking or self.target_source != "measurement" or self._measurement_misses >= 3:
            return True
        return all(stamp <= self._target_init_ns or stamp <= self._measured_ns
                   for cam, stamp, _ in frames if cam == st.camera_id)

    def _flush(self) -> None:
        """Process waiting detection sets in arrival order: each once its heatmaps are in or its wait is over."""
        now = time.monotonic()
        while self._pending:
            arrived, msg = self._pending[0]
            if now - arrived < self._depth_wait_s and not self._heatmaps_ready(msg):
                return
            self._pending.popleft()
            if not self._measurement_ready(self._camera_frames(msg)):
                self._measurement_misses += 1  # waited depth_wait_s for it in vain
            self._process(msg)
        if hasattr(self, "_flush_timer"):
            self._flush_timer.cancel()

    def _depth_for(self, stamp_ns: int, frame_id: str, count: bool = True) -> Any:
        buf = self._depths.get(frame_id)
        depth = None if buf is None else buf.get(stamp_ns, frame_id)
        if depth is None and self.use_depth and count:
            self.counts["frames_without_heatmap"] += 1
            self._heatmap_misses[frame_id] += 1
        return depth

    def _camera_frames(self, msg: DetectionArray) -> list[tuple[int, int, str]]:
        """(camera_id, stamp_ns, frame_id) of every image of the set."""
        for d in msg.detections:
            if d.frame_id:
                self._frame_cam[d.frame_id] = int(d.camera_id)
        if msg.camera_headers:
            return [(camera_of_frame(h.frame_id, k, self._frame_cam), stamp_from_msg(h.stamp), h.frame_id)
                    for k, h in enumerate(msg.camera_headers)]
        stamp = stamp_from_msg(msg.header.stamp)
        first = {}
        for d in msg.detections:
            first.setdefault(int(d.camera_id), d.frame_id or f"cam{int(d.camera_id)}_optical")
        return [(cam, stamp, frame) for cam, frame in sorted(first.items())]

    def _on_detections(self, msg: DetectionArray, info: dict) -> None:
        self._missed.update(info)
        self._pending.append((time.monotonic(), msg))
        self._flush()
        if self._pending and self._flush_timer.is_canceled():
            self._flush_timer.reset()

    def _process(self, msg: DetectionArray) -> None:
        t0 = time.perf_counter()
        by_cam: dict[int, list] = collections.defaultdict(list)
        for d in msg.detections:
            by_cam[int(d.camera_id)].append(d)
        out = TrackArray(header=msg.header)
        for cam, stamp, frame in self._camera_frames(msg):
            try:
                dets = detections_from_msgs(by_cam.pop(cam, []), cam, stamp)
            except ValueError as exc:
                self.counts["invalid_detections"] += 1
                self.get_logger().warning(f"camera {cam}: skipping invalid detections ({exc})",
                                          throttle_duration_sec=5.0)
                dets = Detections.empty(cam, stamp)
            tracker = self._trackers.get(cam)
            if tracker is None:
                tracker = self._trackers[cam] = MultiObjectTracker(self.tracker_config, camera_id=cam)
                self._views[cam] = TrackView(self.publish_tentative)
                self.get_logger().info(f"camera {cam} ({frame}): new tracker")
            tracker.update(dets)
            parts = [tracker.tracks]
            parts += self._target_part(cam, dets)
            live = with_depths(concat_tracks(parts, cam, stamp), self._depth_for(stamp, frame))
            out.tracks.extend(tracks_to_msg(self._views[cam].step(live), frame).tracks)
        if by_cam:
            self.counts["detections_of_unlisted_cameras"] += sum(len(v) for v in by_cam.values())
            self.get_logger().warning(f"detections of cameras {sorted(by_cam)} have no entry in camera_headers: "
                                      "ignored (counted on /diagnostics)", once=True)
        try:
            self._tracks_pub.publish(out)
            self.counts["sets"] += 1
        except Exception as exc:  # noqa: BLE001 - rclpy raises RCLError under load; count it, keep running
            self.counts["publish_errors"] += 1
            self.get_logger().warning(f"publish failed ({exc}); counted", throttle_duration_sec=5.0)
        dt = time.perf_counter() - t0
        self._proc_s += dt
        self._proc_max_s = max(self._proc_max_s, dt)

    def _target_part(self, cam: int, dets: Detections) -> list:
        st = self._target_state
        if st is None or st.camera_id != cam:
            return []
        if self.target_source == "detections" and st.tracking:
            self._target_state = st = self._target.update(dets.boxes, dets.scores, dets.stamp_ns)
        return [target_track(st)]

    def _on_target_set(self, msg: TargetRequest) -> None:
        try:
            self._target_state = self._target.initialize(list(msg.box), stamp_from_msg(msg.header.stamp),
                                                         int(msg.camera_id))
            self._target_init_ns = self._measured_ns = stamp_from_msg(msg.header.stamp)
            self._measurement_misses = 0
        except ValueError as exc:
            self.counts["rejected_target_requests"] += 1
            self.get_logger().error(f"target/set rejected: {exc}")
            return
        self.get_logger().info(f"target set in camera {msg.camera_id} at {[round(v, 1) for v in msg.box]}")

    def _on_target_clear(self, msg: Empty) -> None:
        self._target.clear()
        self._target_state = None
        self.get_logger().info("target cleared")

    def _on_measurement(self, msg: TargetMeasurement) -> None:
        st = self._target_state
        if st is None or not msg.active or int(msg.camera_id) != st.camera_id or not st.tracking:
            self.counts["ignored_measurements"] += 1
            return
        if self.target_source != "measurement":
            self.counts["ignored_measurements"] += 1
            return
        boxes = [list(c.box) for c in msg.candidates]
        scores = [float(c.score) for c in msg.candidates]
        try:
            self._target_state = self._target.update(boxes, scores, stamp_from_msg(msg.header.stamp))
            self._measured_ns = max(self._measured_ns, stamp_from_msg(msg.header.stamp))
            self._measurement_misses = 0
            self._flush()
        except ValueError as exc:
            self.counts["invalid_measurements"] += 1
            self.get_logger().warning(f"skipping an invalid target measurement ({exc})", throttle_duration_sec=5.0)
            return
        if not self._target_state.tracking:
            self.get_logger().info("target lost", once=True)

    # -- diagnostics ---------------------------------------------------------------------------------------------------
    def _diagnostics(self) -> None:
        self._warn_unheard()
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        c = self.counts
        c["detections_missed"] = self._missed.missed
        problems = [k for k in ("bad_heatmaps", "invalid_detections", "invalid_measurements", "publish_errors",
                                "detections_of_unlisted_cameras", "detections_missed") if c[k]]
        level, message = DiagnosticStatus.OK, "tracking"
        if problems:
            level, message = DiagnosticStatus.WARN, "skipped inputs: " + ", ".join(problems)
        values: dict[str, object] = {
            "sets_processed": c["sets"], "rate_hz": f"{c['sets'] / elapsed:.2f}",
            "mean_processing_ms": f"{1e3 * self._proc_s / max(c['sets'], 1):.2f}",
            "max_processing_ms": f"{1e3 * self._proc_max_s:.2f}", "cameras": sorted(self._trackers),
            "heatmaps": c["heatmaps"], "frames_without_heatmap": c["frames_without_heatmap"],
            "target": "none" if self._target_state is None else
            ("held" if self._target_state.tracking else "lost"),
            "detections_publishers": self._detections_publishers,
        }
        for k in ("bad_heatmaps", "invalid_detections", "invalid_measurements", "ignored_measurements",
                  "rejected_target_requests", "publish_errors", "detections_of_unlisted_cameras",
                  "detections_missed"):
            values[k] = c[k]
        if self._missed.unsupported:
            values["detections_missed"] = "unknown"  # the middleware gives no publication sequence numbers
        for cam, tracker in sorted(self._trackers.items()):
            values[f"cam{cam}_live_tracks"] = len(tracker.tracks)
        arr = DiagnosticArray(status=[diagnostic_status(f"{self.get_name()}: tracking", level, message,
                                                        "tracking", values)])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)


def main(args: list[str] | None = None) -> None:
    run_node(TrackingNode, "tracking", args)

if __name__ == "__main__":
    main()
