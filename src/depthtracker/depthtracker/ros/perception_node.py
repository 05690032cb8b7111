"""Perception node (lifecycle): every camera of a synchronised set in one batched pass of DepthTrack and HSV-DET.

Subscriptions (relative names; ``cameras`` = N):

* ``camN/image_raw`` (``sensor_msgs/Image`` rgb8, bgr8 or mono8) with sensor-data QoS, reliability the parameter
  ``reliability`` (match the driver: a reliable subscriber never hears a best-effort publisher, and that mismatch is
  reported as an ERROR on the log and ``/diagnostics`` rather than left silent);
* ``camN/camera_info`` (same QoS): the newest one per camera gives intrinsics; poses come from ``extrinsics``
  (``depthtracker.data.extrinsics``: ``camera_info``, ``synth[:FILE]`` or a rig file; ``/tf_static`` needs tf2,
  which is not installable from PyPI). Until the first camera_info of every camera has come, the newest complete
  set waits for it (an older waiting set is dropped, counted as ``sets_without_camera_info``);
* ``target/set`` (``depthtracker_msgs/TargetRequest``), ``target/clear`` (``std_msgs/Empty``).

Images of the N cameras are paired by our approximate-time synchroniser (``sync_slop_s``, ``sync_queue_size``;
message_filters' semantics). The executor never waits for a model: a complete set goes into a one-slot mailbox
that a worker thread empties; a set that arrives while the previous one still waits replaces it (drop-oldest,
counted as ``dropped_sets``), so outputs are never stale by more than one set. Images that cannot be read
(unsupported encoding, sizes that do not add up, a size other than the camera's CameraInfo) are counted, logged once
and skipped; the node lives on.

Publications (reliable; headers copied from the input images):

* ``depth_heatmap`` (``sensor_msgs/Image`` 32FC1, metres, NaN = unknown), one per camera, header = that image's;
* ``depth_heatmap/color`` (bgr8, parameter ``publish_color``);
* ``detections`` (``DetectionArray``): every camera of the set; ``header.stamp`` = the newest image's,
  ``camera_headers`` = every image's header;
* ``target/measurement`` (``TargetMeasurement``): the single-target candidates of the target's camera;
* ``/diagnostics``: rates, latency (image stamp to publication, p50/p99; meaningful for live cameras whose stamps
  are wall-clock times, not for replayed bags) and node latency (last image of the set received to publication),
  drops (``dropped_sets``: sets replaced in the mailbox; ``images_missed``: images the camera publishers sent that the
  node never took, overwritten in a subscription's DDS queue or lost on the wire, counted from the publishers'
  sequence numbers; ``unknown`` on a middleware without them), skipped inputs, device, models, and the camera
  connection: ``camera_publishers`` (the fewest publishers any camera subscription has matched, from the
  subscriptions' matched events) and ``cameras_unheard`` (the camera topics with none).

Lifecycle (DESIGN.md §1): *configure* loads the checkpoints on the device (CPU fallback when CUDA is absent, logged)
and creates publishers and subscriptions; *activate* starts processing; *deactivate* stops it; *cleanup* frees the
models. With ``autostart`` (default) the node configures and activates itself; a configuration that cannot load
(missing checkpoint, bad device) then exits with status 2. A lifecycle manager can drive it with autostart false.

Parameters: every ``PerceptionConfig`` field, every ``TargetTrackerConfig`` field under ``target.`` (the tracking
node's values: both follow the same box), and the node's own below; read-only, validated at start-up.
"""

from __future__ import annotations

import collections
import functools
import threading
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Empty, Header

from depthtracker.data.camera_info import camera_from_info
from depthtracker.data.extrinsics import poses_for
from depthtracker.data.images import ImageEncodingError, image_to_array
from depthtracker.perception import PerceptionConfig, PerceptionPipeline, PerceptionResult
from depthtracker.ros.conversions import diagnostic_status, image_msg, stamp_from_msg
from depthtracker.ros.params import declare_from_dataclass
from depthtracker.ros.qos import RELIABILITY, MissedMessages, camera_qos, output_qos
from depthtracker.ros.runtime import run_node
from depthtracker.sync import ApproximateTimeSync
from depthtracker.tracking import TargetTrackerConfig
from depthtracker.types import CameraModel, Frame
from depthtracker_msgs.msg import Detection, DetectionArray, TargetMeasurement, TargetRequest

COLOR_ENCODINGS = ("rgb8", "bgr8", "mono8")


def _ro(description: str, **kw: Any) -> ParameterDescriptor:
    return ParameterDescriptor(description=description, read_only=True, **kw)


class PerceptionNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("perception", **kwargs)
        # state first: destroy_node must work even when a bad parameter stops __init__ below
        self.pipeline: PerceptionPipeline | None = None
        self.counts: collections.Counter[str] = collections.Counter()
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=512)  # image stamp -> published
        self._node_ms: collections.deque[float] = collections.deque(maxlen=512)  # last image received -> published
        self._proc_ms: collections.deque[float] = collections.deque(maxlen=512)
        self._lock = threading.Lock()  # guards the pipeline (worker) against target requests (executor)
        self._cv = threading.Condition()
        self._mailbox: list | None = None
        self._held: tuple | None = None  # a complete set that waits for the first camera_info of every camera
        self._active = False
        self._stop = True
        self._worker: threading.Thread | None = None
        self._infos: dict[int, CameraInfo] = {}
        self._cameras: dict[int, CameraModel] = {}
        self._qos_errors: list[str] = []
        self._matched: dict[str, int] = {}  # camera topic -> publishers matched now (the subscription's matched event)
        self._missed: list[MissedMessages] = []  # per camera: images its publishers sent that were never taken
        self._image_at: dict[int, float] = {}  # per camera: monotonic time its last image arrived
        self._entities: list = []
        self._t0 = time.monotonic()
        self._configure_error = ""
        self.config = declare_from_dataclass(self, PerceptionConfig)
        self.target_config = declare_from_dataclass(self, TargetTrackerConfig, prefix="target.")
        self.declare_parameter("cameras", 1, _ro(
            "number of cameras: subscribes camN/image_raw and camN/camera_info for N = 0 .. cameras-1",
            integer_range=[IntegerRange(from_value=1, to_value=64, step=1)]))
        self.declare_parameter("reliability", "best_effort", _ro(
            f"QoS reliability of the camera subscriptions, one of {sorted(RELIABILITY)} (match the driver)"))
        self.declare_parameter("extrinsics", "camera_info", _ro(
            "camera poses: camera_info (stereo baseline from P, else co-located), synth, synth:FILE, or a rig YAML"))
        self.declare_parameter("sync_slop_s", 0.02, _ro(
            "largest stamp spread within a synchronised set, s",
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=10.0, step=0.0)]))
        self.declare_parameter("sync_queue_size", 10, _ro(
            "images held per camera while pairing (oldest dropped beyond, counted)",
            integer_range=[IntegerRange(from_value=1, to_value=1000, step=1)]))
        self.declare_parameter("publish_color", False, _ro("also publish depth_heatmap/color (bgr8)"))
        self.declare_parameter("colormap_near", 0.5, _ro(
            "depth_heatmap/color: depth at the warm end, m",
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1000.0, step=0.0)]))
        self.declare_parameter("colormap_far", 15.0, _ro(
            "depth_heatmap/color: depth at the cold end, m",
            floating_point_range=[FloatingPointRange(from_value=0.001, to_value=10000.0, step=0.0)]))
        self.declare_parameter("autostart", True, _ro("configure and activate at start-up (else wait for a manager)"))
        self.declare_parameter("unheard_warn_s", 5.0, _ro(
            "warn on the log when a camera topic has had no publisher this long after activation, s (0: never)",
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=3600.0, step=0.0)]))
        self.declare_parameter("diagnostics_period_s", 1.0, _ro(
            "period of /diagnostics messages, s",
            floating_point_range=[FloatingPointRange(from_value=0.1, to_value=60.0, step=0.0)]))
        self.num_cameras = int(self.get_parameter("cameras").value)
        self.reliability = str(self.get_parameter("reliability").value)
        camera_qos(self.reliability)  # a bad value stops the node here, naming it
        self.extrinsics = str(self.get_parameter("extrinsics").value)
        self.publish_color = bool(self.get_parameter("publish_color").value)
        self.near, self.far = (float(self.get_parameter(n).value) for n in ("colormap_near", "colormap_far"))
        self.unheard_warn_s = float(self.get_parameter("unheard_warn_s").value)
        self._active_since = 0.0  # monotonic time of the last activation
        if not 0 < self.near < self.far:
            raise ValueError(f"parameters colormap_near={self.near} and colormap_far={self.far} must satisfy "
                             "0 < near < far")

        self.create_timer(float(self.get_parameter("diagnostics_period_s").value), self._diagnostics)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", output_qos())
        if bool(self.get_parameter("autostart").value):
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise ValueError(self._configure_error or "configure failed")
            self.trigger_activate()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            t = time.perf_counter()
            self.pipeline = PerceptionPipeline.from_config(self.config, self.target_config)
        except (ValueError, OSError) as exc:  # missing checkpoint, CUDA asked for but absent, bad sidecar
            self._configure_error = f"cannot load the models: {exc}"
            self.get_logger().error(self._configure_error)
            return TransitionCallbackReturn.FAILURE
        p = self.pipeline
        fallback = ""
        if self.config.device == "auto" and p.device == "cpu":
            fallback = " (CPU fallback: CUDA is not available)"
        self.get_logger().info(f"models on {p.device}{fallback} in {time.perf_counter() - t:.1f} s: "
                               f"depth={p.checkpoints['depth']}, detector={p.checkpoints['detector']}, "
                               f"models {p.concurrency}")
        self._create_entities()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        with self._cv:
            self._active, self._stop, self._mailbox = True, False, None
        self._active_since = time.monotonic()
        self._worker = threading.Thread(target=self._work, name="perception-worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"active: {self.num_cameras} camera(s), reliability={self.reliability}, "
                               f"extrinsics={self.extrinsics}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._halt()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._halt()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._halt()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _halt(self) -> None:
        with self._cv:
            self._active, self._stop, self._mailbox = False, True, None
            self._cv.notify_all()
        self._held = None
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    def _release(self) -> None:
        for ent in self._entities:
            if hasattr(ent, "topic_name") and hasattr(ent, "publish"):
                self.destroy_publisher(ent)
            else:
                self.destroy_subscription(ent)
        self._entities, self._matched = [], {}
        with self._lock:
            if self.pipeline is not None:
                self.pipeline.close()
            self.pipeline = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def _create_entities(self) -> None:
        cam_qos, out_qos = camera_qos(self.reliability), output_qos()
        n = self.num_cameras
        self._sync = ApproximateTimeSync(n, int(self.get_parameter("sync_queue_size").value),
                                         float(self.get_parameter("sync_slop_s").value)) if n > 1 else None
        pub_events = PublisherEventCallbacks(incompatible_qos=self._on_incompatible_pub)
        ents = self._entities
        self._matched = {}
        self._missed = [MissedMessages() for _ in range(n)]
        for i in range(n):
            # two-argument callbacks: rclpy passes the MessageInfo (the publisher's sequence number) with the message
            for kind, cls, cb in (("image_raw", Image, functools.partial(self._on_image, i)),
                                  ("camera_info", CameraInfo, lambda m, i=i: self._on_info(i, m))):
                topic = self.resolve_topic_name(f"cam{i}/{kind}")  # as operators see it: namespace, remaps
                self._matched[topic] = 0
                events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_sub,
                                                    matched=lambda info, t=topic: self._on_matched(t, info))
                ents.append(self.create_subscription(cls, f"cam{i}/{kind}", cb, cam_qos, event_callbacks=events))
        ents.append(self.create_subscription(TargetRequest, "target/set", self._on_target_set, out_qos))
        ents.append(self.create_subscription(Empty, "target/clear", self._on_target_clear, out_qos))
        self._depth_pub = self.create_publisher(Image, "depth_heatmap", out_qos, event_callbacks=pub_events)
        self._color_pub = (self.create_publisher(Image, "depth_heatmap/color", out_qos, event_callbacks=pub_events)
                           if self.publish_color else None)
        self._det_pub = self.create_publisher(DetectionArray, "detections", out_qos, event_callbacks=pub_events)
        self._meas_pub = self.create_publisher(TargetMeasurement, "target/measurement", out_qos,
                                               event_callbacks=pub_events)
        ents += [p for p in (self._depth_pub, self._color_pub, self._det_pub, self._meas_pub) if p is not None]

    def _on_matched(self, topic: str, info: Any) -> None:
        # this subscription's side of the match: what it hears from now on (a player or a driver can check this on
        # /diagnostics before its first image, see camera_publishers)
        self._matched[topic] = int(info.current_count)

    # -- QoS mismatches: loud, never silent ---------------------------------------------------------------------------
    def _on_incompatible_sub(self, info: Any) -> None:
        self._qos_incompatible(f"a publisher offers QoS incompatible with this subscription (policy "
                               f"{info.last_policy_kind}, {info.total_count} so far); check 'reliability' "
                               f"(this node: {self.reliability}) against the camera driver")

    def _on_incompatible_pub(self, info: Any) -> None:
        self._qos_incompatible(f"a subscriber requests QoS this node does not offer (policy {info.last_policy_kind}, "
                               f"{info.total_count} so far); outputs are reliable + volatile")

    def _qos_incompatible(self, text: str) -> None:
        self.counts["qos_incompatible"] += 1
        self._qos_errors.append(text)
        self.get_logger().error(text)

    # -- inputs -------------------------------------------------------------------------------------------------------
    def _on_info(self, i: int, msg: CameraInfo) -> None:
        old = self._infos.get(i)
        self._infos[i] = msg
        if old is None or list(old.k) != list(msg.k) or list(old.p) != list(msg.p) or \
                (old.width, old.height, old.header.frame_id) != (msg.width, msg.height, msg.header.frame_id):
            self._cameras.pop(i, None)  # rebuilt (with its pose) when the next set needs it
        if self._held is not None and len(self._infos) == self.num_cameras:
            held, self._held = self._held, None
            self._post(held)

    def _camera(self, i: int) -> CameraModel | None:
        cam = self._cameras.get(i)
        if cam is None and i in self._infos and len(self._infos) == self.num_cameras:
            infos = [self._infos[k] for k in range(self.num_cameras)]
            poses = poses_for(self.extrinsics, [m.header.frame_id or f"cam{k}_optical" for k, m in enumerate(infos)],
                              [np.asarray(m.p, np.float64).reshape(3, 4) for m in infos])
            for k, (m, T) in enumerate(zip(infos, poses)):
                self._cameras[k] = camera_from_info(m, k, T, m.header.frame_id or f"cam{k}_optical")
            cam = self._cameras[i]
        return cam

    def _on_image(self, i: int, msg: Image, info: dict) -> None:
        self._missed[i].update(info)  # taken, even while inactive: only what never arrives is missed
        self._image_at[i] = time.monotonic()
        if not self._active:
            return
        self.counts["images"] += 1
        try:
            if msg.encoding not in COLOR_ENCODINGS:
                raise ImageEncodingError(f"encoding {msg.encoding!r} is not a colour image (expected one of "
                                         f"{list(COLOR_ENCODINGS)})")
            array = image_to_array(msg, f"cam{i}/image_raw")
        except ImageEncodingError as exc:
            self.counts["bad_images"] += 1
            self.get_logger().warning(f"cam{i}: skipping an unreadable image ({exc}); further ones are counted on "
                                      "/diagnostics", once=True)
            return
        item = (msg.header, array, msg.encoding, msg, time.monotonic())  # msg keeps the array's buffer alive
        if self._sync is None:
            self._deliver((item,))
            return
        for complete in self._sync.push(i, stamp_from_msg(msg.header.stamp), item):
            self._deliver(complete)

    def _deliver(self, items: tuple) -> None:
        """A complete set goes to the worker. Before the first camera_info of every camera has come, the newest
        complete set waits for it instead (camera_info and image are separate topics, and the first image often
        arrives just before its camera_info); a waiting set replaced by a newer one is counted as skipped."""
        if len(self._infos) == self.num_cameras:
            self._post(items)
            return
        if self._held is not None:
            self.counts["sets_without_camera_info"] += 1
            self.get_logger().warning("waiting for camera_info of every camera; sets are skipped until then",
                                      throttle_duration_sec=5.0)
        self._held = items

    def _post(self, items: tuple) -> None:
        with self._cv:
            if self._mailbox is not None:
                self.counts["dropped_sets"] += 1  # the worker is behind: keep only the newest set
            self._mailbox = list(items)
            self._cv.notify()

    def _on_target_set(self, msg: TargetRequest) -> None:
        with self._lock:
            if self.pipeline is None:
                return
            try:
                now = self.pipeline.set_target(int(msg.camera_id), list(msg.box), stamp_from_msg(msg.header.stamp))
            except ValueError as exc:
                self.counts["rejected_target_requests"] += 1
                self.get_logger().error(f"target/set rejected: {exc}")
                return
        self.get_logger().info(f"target set in camera {msg.camera_id}: template "
                               f"{'cut from its image' if now else 'waits for its image'}")

    def _on_target_clear(self, msg: Empty) -> None:
        with self._lock:
            if self.pipeline is not None:
                self.pipeline.clear_target()
        self.get_logger().info("target cleared")

    # -- processing (worker thread) -----------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._stop or self._mailbox is not None)
                if self._stop:
                    return
                items, self._mailbox = self._mailbox, None
            try:
                self._process(items)
            except Exception as exc:  # noqa: BLE001 - one bad set must not kill the worker; counted and logged
                self.counts["failed_sets"] += 1
                self.get_logger().error(f"processing a set failed: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=5.0)

    def _frames(self, items: list) -> tuple[list[Frame], list[CameraModel], list[Header]] | None:
        frames, cams, headers = [], [], []
        for i, (hdr, array, encoding, _, _) in enumerate(items):
            cam = self._camera(i)
            if cam is None:
                self.counts["sets_without_camera_info"] += 1
                self.get_logger().warning("waiting for camera_info of every camera; sets are skipped until then",
                                          throttle_duration_sec=5.0)
                return None
            if array.shape[:2] != (cam.height, cam.width):
                self.counts["bad_images"] += 1
                self.get_logger().warning(f"cam{i}: image is {array.shape[1]}x{array.shape[0]} but its camera_info "
                                          f"says {cam.width}x{cam.height}; skipped (counted)", once=True)
                return None
            if encoding == "bgr8":
                array = array[:, :, ::-1]
            elif encoding == "mono8":
                array = np.repeat(array.reshape(array.shape[0], array.shape[1], 1), 3, axis=2)
            frames.append(Frame(np.ascontiguousarray(array), i, stamp_from_msg(hdr.stamp), hdr.frame_id))
            cams.append(cam)
            headers.append(hdr)
        return frames, cams, headers

    def _process(self, items: list) -> None:
        got = self._frames(items)
        if got is None:
            return
        frames, cams, headers = got
        with self._lock:
            if self.pipeline is None:
                return
            result = self.pipeline.process(frames, cams)
        self._publish(result, frames, headers)
        now = time.time_ns()
        newest = max(f.stamp_ns for f in frames)
        self.counts["sets"] += 1
        if self.counts["sets"] == 1:  # the pipeline is live: said once (a respawned node says it again)
            self.get_logger().info(f"first set published: {len(frames)} camera(s), "
                                   f"{result.timings_ms.get('total', 0.0):.0f} ms, "
                                   f"{time.monotonic() - self._active_since:.1f} s after activation")
        self._proc_ms.append(result.timings_ms.get("total", 0.0))
        self._node_ms.append(1e3 * (time.monotonic() - max(item[4] for item in items)))
        if not self.get_parameter("use_sim_time").value:
            self._latency_ms.append((now - newest) / 1e6)

    def _publish(self, result: PerceptionResult, frames: list[Frame], headers: list[Header]) -> None:
        try:
            if result.depths is not None:
                for dm, hdr in zip(result.depths, headers):
                    msg = image_msg(np.ascontiguousarray(dm.depth, np.float32), "32FC1", 0, hdr.frame_id)
                    msg.header = hdr
                    self._depth_pub.publish(msg)
                    if self._color_pub is not None:
                        from depthtracker.viz.draw import colorize_depth

                        color = colorize_depth(dm.depth, self.near, self.far)[:, :, ::-1]
                        cmsg = image_msg(np.ascontiguousarray(color), "bgr8", 0, hdr.frame_id)
                        cmsg.header = hdr
                        self._color_pub.publish(cmsg)
            if result.detections is not None:
                out = DetectionArray(camera_headers=headers)
                out.header = max(headers, key=lambda h: stamp_from_msg(h.stamp))
                names = self.pipeline.detector.class_names if self.pipeline and self.pipeline.detector else ()
                for dets, hdr in zip(result.detections, headers):
                    for k in range(len(dets)):
                        d = Detection(camera_id=int(dets.camera_id), frame_id=hdr.frame_id,
                                      score=float(dets.scores[k]), class_id=int(dets.labels[k]))
                        d.box = dets.boxes[k].tolist()
                        label = int(dets.labels[k])
                        d.class_name = names[label] if 0 <= label < len(names) else ""
                        if dets.sigmas is not None:
                            d.box_sigma = dets.sigmas[k].tolist()
                        out.detections.append(d)
                self._det_pub.publish(out)
            tc = result.target
            if tc is not None:
                hdr = headers[[f.camera_id for f in frames].index(tc.camera_id)]
                meas = TargetMeasurement(header=hdr, camera_id=int(tc.camera_id), active=bool(tc.active))
                for k in range(len(tc.scores)):
                    c = Detection(camera_id=int(tc.camera_id), frame_id=hdr.frame_id, score=float(tc.scores[k]),
                                  class_id=-1)
                    c.box, c.box_sigma = tc.boxes[k].tolist(), tc.sigmas[k].tolist()
                    meas.candidates.append(c)
                self._meas_pub.publish(meas)
        except Exception as exc:  # noqa: BLE001 - rclpy raises RCLError under load; count it, keep running
            self.counts["publish_errors"] += 1
            self.get_logger().warning(f"publish failed ({exc}); counted", throttle_duration_sec=5.0)

    # -- diagnostics --------------------------------------------------------------------------------------------------
    def _warn_unheard(self) -> None:
        """Say on the log, not only on /diagnostics, when an active node's cameras are silent for ``unheard_warn_s``:
        topics without a publisher (the driver is down, a namespace or remap is wrong, or the middleware never
        discovered it), and image topics whose publishers are matched but deliver nothing (a stalled driver, or the
        middleware: see the README on restarts after SIGKILL)."""
        now = time.monotonic()
        since = now - self._active_since
        if not self._active or self.unheard_warn_s <= 0 or since < self.unheard_warn_s:
            return
        unheard = [t for t, k in self._matched.items() if k == 0]
        if unheard:
            self.get_logger().warning(
                f"no publisher on {' '.join(unheard)} {since:.0f} s after activation: is the camera driver (ingest, "
                "a player) running, in this namespace and ROS_DOMAIN_ID? (/diagnostics: cameras_unheard)",
                throttle_duration_sec=30.0)
        silent = []
        for i in range(self.num_cameras):
            topic = self.resolve_topic_name(f"cam{i}/image_raw")
            quiet = now - max(self._active_since, self._image_at.get(i, 0.0))
            if self._matched.get(topic, 0) > 0 and quiet >= self.unheard_warn_s:
                silent.append(f"{topic} ({quiet:.0f} s)")
        if silent:
            self.get_logger().warning(
                f"no image on {', '.join(silent)} although its publisher is matched: the driver stalled, or the "
                "middleware delivers nothing (Fast DDS after a process on the topic was killed, see README)",
                throttle_duration_sec=30.0)

    def _diagnostics(self) -> None:
        self._warn_unheard()
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        c = self.counts
        level, message = DiagnosticStatus.OK, "processing" if self._active else "inactive"
        skipped = [k for k in ("bad_images", "failed_sets", "publish_errors", "sets_without_camera_info") if c[k]]
        if skipped:
            level, message = DiagnosticStatus.WARN, "skipped inputs: " + ", ".join(skipped)
        if self._configure_error:
            level, message = DiagnosticStatus.ERROR, self._configure_error
        if c["qos_incompatible"]:
            level, message = DiagnosticStatus.ERROR, "incompatible QoS: " + self._qos_errors[-1]
        lat = np.array(self._latency_ms) if self._latency_ms else None
        p = self.pipeline
        values: dict[str, object] = {
            "sets_processed": c["sets"], "rate_hz": f"{c['sets'] / elapsed:.2f}", "images": c["images"],
            "dropped_sets": c["dropped_sets"],
            "sync_dropped": sum(self._sync.dropped) if getattr(self, "_sync", None) is not None else 0,
            # images the camera publishers sent that this node never took (overwritten in a subscription's DDS
            # queue while the executor was behind, or lost on the wire), from their sequence numbers
            "images_missed": (sum(m.missed for m in self._missed)
                              if not any(m.unsupported for m in self._missed) else "unknown"),
            "latency_p50_ms": f"{np.percentile(lat, 50):.1f}" if lat is not None else "nan",
            "latency_p99_ms": f"{np.percentile(lat, 99):.1f}" if lat is not None else "nan",
            "node_latency_p50_ms": f"{np.percentile(self._node_ms, 50):.1f}" if self._node_ms else "nan",
            "node_latency_p99_ms": f"{np.percentile(self._node_ms, 99):.1f}" if self._node_ms else "nan",
            "mean_processing_ms": f"{np.mean(self._proc_ms):.1f}" if self._proc_ms else "nan",
            "device": p.device if p is not None else "none",
            "model_concurrency": p.concurrency if p is not None else "none",
            "depth_model": p.checkpoints["depth"] if p is not None else "none",
            "detector": p.checkpoints["detector"] if p is not None else "none",
            "target_camera": p.target_camera if p is not None and p.target_camera is not None else "none",
            # fewest publishers any camera subscription has matched (0: some camera topic hears nobody yet), and
            # which topics those are
            "camera_publishers": min(self._matched.values(), default=0),
            "cameras_unheard": " ".join(t for t, k in self._matched.items() if k == 0) or "none",
        }
        for k in ("bad_images", "failed_sets", "publish_errors", "sets_without_camera_info", "qos_incompatible",
                  "rejected_target_requests"):
            values[k] = c[k]
        arr = DiagnosticArray(status=[diagnostic_status(f"{self.get_name()}: perception", level, message,
                                                        values["device"], values)])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def destroy_node(self) -> None:
        self._halt()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(PerceptionNode, "perception", args)


if __name__ == "__main__":
    main()
