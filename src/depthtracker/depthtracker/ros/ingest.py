"""Ingest node: camera sources -> ``camN/image_raw`` (rgb8) + ``camN/camera_info``, paced, never blocking.

Sources (parameter ``cameras``: one SPEC per camera, camera N = the N-th entry; default ``[synth]``):

* ``synth``: the synthetic world (``depthtracker.data.synth``) rendered live, configured by the YAML file in
  ``synth_config`` (default: the installed ``config/synth.yaml``). Images are stamped with the node's clock when
  published, as a live camera driver would; the world time advances one frame per published set.

  Rendering runs in a worker thread that keeps at most ``queue_size`` sets ahead of the publisher (it waits when
  the queue is full, so nothing is rendered only to be dropped); the publish timer never waits for it: a tick with
  no set ready is counted as late and reported on ``/diagnostics``. ``synth`` stands alone (it is a whole rig).
* ``video:PATH``, ``folder:DIR``, ``v4l2:DEVICE`` (``depthtracker.data.sources``): read by a capture thread paced
  to real time at ``fps`` (one frame per camera per period; ``loop`` restarts files and folders); sets wait in a
  bounded queue of ``queue_size`` (drop-oldest, counted). CameraInfo comes from ``calibrations[N]``, a ROS
  camera_info YAML file (``depthtracker.data.calibration``), or, when that entry is empty or missing, from a pinhole
  model with horizontal field of view ``hfov_deg`` at the image's size. A source that fails or vanishes is reported
  as ERROR for its camera on ``/diagnostics`` and re-opened with exponential back-off (``retry_initial_s`` doubling to
  ``retry_max_s``); it recovers when the file or device returns. Images are stamped when published.

Topic names are relative: remap or namespace them. The legacy ``source`` parameter accepts only ``synth``.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from depthtracker.configio import config_dir, load_config
from depthtracker.data.calibration import CameraCalibration, load_calibration, pinhole_calibration
from depthtracker.data.sources import RetryingSource, SourceSpec, open_source, parse_source_spec
from depthtracker.data.synth import SynthConfig, SynthWorld
from depthtracker.ros.conversions import camera_info_msg, camera_info_msg_from_fields, image_msg
from depthtracker.ros.qos import RELIABILITY, camera_qos, latched_qos, output_qos
from depthtracker.ros.runtime import run_node

SOURCES = ("synth",)


class IngestNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("ingest", **kwargs)
        self.declare_parameter("source", "synth", ParameterDescriptor(
            description=f"camera source, one of {list(SOURCES)}", read_only=True))
        self.declare_parameter("synth_config", "", ParameterDescriptor(
            description="synthetic world YAML (ROS params layout); empty = the installed config/synth.yaml",
            read_only=True))
        self.declare_parameter("reliability", "best_effort", ParameterDescriptor(
            description=f"QoS reliability of the camera topics, one of {sorted(RELIABILITY)}", read_only=True))
        self.declare_parameter("loop", True, ParameterDescriptor(
            description="restart the synthetic sequence at its end (false: stop publishing)"))
        self.declare_parameter("queue_size", 2, ParameterDescriptor(
            description="sets rendered ahead of the publisher", read_only=True,
            integer_range=[IntegerRange(from_value=1, to_value=64, step=1)]))
        self.declare_parameter("diagnostics_period_s", 1.0, ParameterDescriptor(
            description="period of /diagnostics messages, s", read_only=True,
            floating_point_range=[FloatingPointRange(from_value=0.1, to_value=60.0, step=0.0)]))
        self.declare_parameter("cameras", ["synth"], ParameterDescriptor(
            description="one source SPEC per camera: video:PATH, folder:DIR, v4l2:DEVICE, or [synth] alone",
            read_only=True))
        self.declare_parameter("calibrations", [""], ParameterDescriptor(
            description="camera_info YAML per camera ('' or missing: pinhole from hfov_deg)", read_only=True))
        for name, default, lo, hi, desc in (
            ("hfov_deg", 70.0, 1.0, 179.0, "horizontal field of view of the default pinhole camera, degrees"),
            ("fps", 15.0, 0.1, 1000.0, "capture rate of video/folder/v4l2 sources, Hz"),
            ("retry_initial_s", 0.5, 0.01, 60.0, "first wait before re-opening a failed source, s (doubles)"),
            ("retry_max_s", 10.0, 0.01, 3600.0, "longest wait before re-opening a failed source, s"),
        ):
            self.declare_parameter(name, default, ParameterDescriptor(
                description=desc, read_only=True,
                floating_point_range=[FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]))

        source = self.get_parameter("source").value
        if source not in SOURCES:
            raise ValueError(f"parameter source must be one of {list(SOURCES)}, got {source!r}")
        reliability = self.get_parameter("reliability").value
        qos = camera_qos(reliability)  # raises naming the parameter value when wrong
        specs = [parse_source_spec(s) for s in self.get_parameter("cameras").value]
        self.loop = bool(self.get_parameter("loop").value)
        self._image_pubs: list = []
        self._info_pubs: list = []
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", output_qos())
        self._queue: collections.deque = collections.deque()
        self._queue_size = int(self.get_parameter("queue_size").value)
        self._cv = threading.Condition()
        self._stop = False
        self.published = self.late = self.publish_errors = self.dropped = 0
        self._render_s = 0.0
        self._t0 = time.monotonic()
        self.world = None
        if specs != [SourceSpec("synth", "")]:
            if any(s.kind == "synth" for s in specs) or not specs:
                raise ValueError(f"parameter cameras: synth stands alone (a whole rig), got {[s.kind for s in specs]}")
            self._start_live(specs, qos, reliability)
            return
        path = self.get_parameter("synth_config").value or str(config_dir() / "synth.yaml")
        self.config = load_config(SynthConfig, path)
        self.world = SynthWorld(self.config)
        for cam in self.world.cameras:
            self._image_pubs.append(self.create_publisher(Image, f"cam{cam.camera_id}/image_raw", qos))
            self._info_pubs.append(self.create_publisher(CameraInfo, f"cam{cam.camera_id}/camera_info", qos))
        self._publish_tf_static()
        self._worker = threading.Thread(target=self._render_loop, name="ingest-render", daemon=True)
        self._worker.start()
        self.create_timer(1.0 / self.config.fps, self._tick)
        self.create_timer(float(self.get_parameter("diagnostics_period_s").value), self._diagnostics)
        self.get_logger().info(
            f"source={source}: {self.config.cameras} cameras {self.config.width}x{self.config.height} "
            f"at {self.config.fps:g} Hz, reliability={reliability}, config={path}")

    # -- live sources: video, folder, v4l2 -------------------------------------------------------------------------
    def _start_live(self, specs: list[SourceSpec], qos: Any, reliability: str) -> None:
        calib_paths = list(self.get_parameter("calibrations").value)
        self._specs = specs
        self._calibs: list[CameraCalibration | None] = [
            load_calibration(calib_paths[i]) if i < len(calib_paths) and calib_paths[i] else None
            for i in range(len(specs))]  # CalibrationError (a ValueError) stops the node at start-up
        self._hfov = float(self.get_parameter("hfov_deg").value)
        self.fps = float(self.get_parameter("fps").value)
        r0, r1 = (float(self.get_parameter(n).value) for n in ("retry_initial_s", "retry_max_s"))
        if r1 < r0:
            raise ValueError(f"parameter retry_max_s ({r1}) must be >= retry_initial_s ({r0})")
        self._sources = [RetryingSource(lambda s=s: open_source(s, self.loop), r0, r1) for s in specs]
        self._frames_out = [0] * len(specs)
        self._size_warned: set[int] = set()
        for i in range(len(specs)):
            self._image_pubs.append(self.create_publisher(Image, f"cam{i}/image_raw", qos))
            self._info_pubs.append(self.create_publisher(CameraInfo, f"cam{i}/camera_info", qos))
        self._worker = threading.Thread(target=self._capture_loop, name="ingest-capture", daemon=True)
        self._worker.start()
        self.create_timer(0.5 / self.fps, self._tick_live)  # twice the capture rate: a set never waits long
        self.create_timer(float(self.get_parameter("diagnostics_period_s").value), self._diagnostics)
        self.get_logger().info(f"cameras={[f'{s.kind}:{s.target}' for s in specs]} at {self.fps:g} Hz, "
                               f"reliability={reliability}")

    def _capture_loop(self) -> None:
        period = 1.0 / self.fps
        due = time.monotonic()
        while True:
            with self._cv:
                if self._cv.wait_for(lambda: self._stop, timeout=max(due - time.monotonic(), 0.0)):
                    return
            now = time.monotonic()
            due = max(due + period, now - period)  # after a stall, no burst to catch up
            t = time.perf_counter()
            frames = {i: f for i, src in enumerate(self._sources) if (f := src.read(now)) is not None}
            self._render_s += time.perf_counter() - t
            if frames:
                with self._cv:
                    self._queue.append(frames)
                    while len(self._queue) > self._queue_size:
                        self._queue.popleft()
                        self.dropped += 1
            elif all(src.finished for src in self._sources):
                return  # every (finite, not looping) source reached its end

    def _tick_live(self) -> None:
        with self._cv:
            frames = self._queue.popleft() if self._queue else None
        if frames is None:
            return
        stamp_ns = self.get_clock().now().nanoseconds
        for i, frame in frames.items():
            frame_id = f"cam{i}_optical"
            cal = self._calibs[i]
            h, w = frame.shape[:2]
            if cal is None:
                cal = self._calibs[i] = pinhole_calibration(w, h, self._hfov)
            elif (cal.width, cal.height) != (w, h) and i not in self._size_warned:
                self._size_warned.add(i)
                self.get_logger().warning(f"camera {i}: image is {w}x{h}, calibration says {cal.width}x{cal.height}")
            try:
                self._image_pubs[i].publish(image_msg(frame, "rgb8", stamp_ns, frame_id))
                self._info_pubs[i].publish(camera_info_msg_from_fields(cal.info_fields(), stamp_ns, frame_id))
                self._frames_out[i] += 1
            except Exception as exc:  # noqa: BLE001 - rclpy raises RCLError under load; count it, keep running
                self.publish_errors += 1
                self.get_logger().warning(f"publish failed ({exc}); counted", throttle_duration_sec=5.0)
        self.published += 1

    def _live_statuses(self) -> list[DiagnosticStatus]:
        out = []
        for i, (spec, src) in enumerate(zip(self._specs, self._sources)):
            if src.ok or (src.finished and not src.error):
                level, message = DiagnosticStatus.OK, "finished" if src.finished else "capturing"
            else:
                level, message = DiagnosticStatus.ERROR, src.error or "not opened yet"
            st = DiagnosticStatus(level=level, name=f"{self.get_name()}: cam{i}", message=message,
                                  hardware_id=f"{spec.kind}:{spec.target}")
            st.values = [KeyValue(key=k, value=v) for k, v in (
                ("frames_published", str(self._frames_out[i])), ("failures", str(src.failures)),
                ("dropped_sets", str(self.dropped)), ("publish_errors", str(self.publish_errors)))]
            out.append(st)
        return out

    # -- rendering (worker thread) -------------------------------------------------------------------------------
    def _render_loop(self) -> None:
        index = 0
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._stop or len(self._queue) < self._queue_size)
                if self._stop:
                    return
            if index >= self.world.num_frames:
                if not self.loop:
                    return
                index = 0
            t = time.perf_counter()
            sample = self.world.render(index)
            self._render_s += time.perf_counter() - t
            index += 1
            with self._cv:
                self._queue.append(sample)

    # -- publishing (executor) -----------------------------------------------------------------------------------
    def _tick(self) -> None:
        with self._cv:
            sample = self._queue.popleft() if self._queue else None
            self._cv.notify()
        if sample is None:
            self.late += 1
            return
        stamp_ns = self.get_clock().now().nanoseconds
        for cam, frame, ipub, cpub in zip(self.world.cameras, sample.frames, self._image_pubs, self._info_pubs):
            tx = 0.0
            if self.world.stereo_pair is not None and cam.camera_id == self.world.stereo_pair[1]:
                tx = -float(cam.K[0, 0]) * self.world.baseline_m
            try:
                ipub.publish(image_msg(frame.image, "rgb8", stamp_ns, cam.frame_id))
                cpub.publish(camera_info_msg(cam, stamp_ns, tx))
            except Exception as exc:  # noqa: BLE001 - rclpy raises RCLError under load; count it, keep running
                self.publish_errors += 1
                self.get_logger().warning(f"publish failed ({exc}); counted", throttle_duration_sec=5.0)
        self.published += 1

    def _publish_tf_static(self) -> None:
        try:
            from geometry_msgs.msg import TransformStamped
            from tf2_msgs.msg import TFMessage
        except ImportError:
            self.get_logger().warning("tf2_msgs is not installed: /tf_static (the rig poses) is not published; "
                                      "bags written by 'depthtracker synth' carry it")
            return
        from depthtracker.geometry.rotations import matrix_to_quaternion
        from depthtracker.ros.conversions import header

        stamp = self.get_clock().now().nanoseconds
        msg = TFMessage()
        for cam in self.world.cameras:
            t = TransformStamped(header=header(stamp, "world"), child_frame_id=cam.frame_id)
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
                float(v) for v in cam.T_world_cam[:3, 3])
            q = matrix_to_quaternion(cam.T_world_cam[:3, :3])
            t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w = (
                float(v) for v in q)
            msg.transforms.append(t)
        self._tf_pub = self.create_publisher(TFMessage, "/tf_static", latched_qos())
        self._tf_pub.publish(msg)

    def _diagnostics(self) -> None:
        if self.world is None:
            arr = DiagnosticArray(status=self._live_statuses())
            arr.header.stamp = self.get_clock().now().to_msg()
            self._diag_pub.publish(arr)
            return
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        rate = self.published / elapsed
        level = DiagnosticStatus.OK
        message = "publishing"
        if rate < 0.9 * self.config.fps and self.published > 0:
            level, message = DiagnosticStatus.WARN, "publishing below the configured rate (rendering is slower)"
        if self.published == 0 and elapsed > 5.0:
            level, message = DiagnosticStatus.ERROR, "nothing published yet"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: synth", message=message,
                                  hardware_id="synth")
        mean_render_ms = 1e3 * self._render_s / max(self.published, 1)
        status.values = [KeyValue(key=k, value=v) for k, v in (
            ("sets_published", str(self.published)), ("rate_hz", f"{rate:.2f}"),
            ("target_rate_hz", f"{self.config.fps:g}"), ("late_ticks", str(self.late)),
            ("publish_errors", str(self.publish_errors)), ("mean_render_ms", f"{mean_render_ms:.1f}"))]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def destroy_node(self) -> None:
        cv = getattr(self, "_cv", None)  # absent when a bad parameter stopped __init__ early
        if cv is not None:
            with cv:
                self._stop = True
                cv.notify_all()
        if hasattr(self, "_worker"):
            self._worker.join(timeout=5.0)
        for src in getattr(self, "_sources", []):
            src.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(IngestNode, "ingest", args)

if __name__ == "__main__":
    main()
