"""Ingest node: camera sources -> ``camN/image_raw`` (rgb8) + ``camN/camera_info``, paced, never blocking.

Sources (parameter ``source``):

* ``synth``: the synthetic world (``depthtracker.data.synth``) rendered live, configured by the YAML file in
  ``synth_config`` (default: the installed ``config/synth.yaml``). Images are stamped with the node's clock when
  published, as a live camera driver would; the world time advances one frame per published set.

Rendering runs in a worker thread that keeps at most ``queue_size`` sets ahead of the publisher (it waits when the
queue is full, so nothing is rendered only to be dropped); the publish timer never waits for it: a tick with no set
ready is counted as late and reported on ``/diagnostics``. Topic names are relative: remap or namespace them.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from depthtracker.configio import config_dir, load_config
from depthtracker.data.synth import SynthConfig, SynthWorld
from depthtracker.ros.conversions import camera_info_msg, image_msg
from depthtracker.ros.qos import RELIABILITY, camera_qos, latched_qos, output_qos

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

        source = self.get_parameter("source").value
        if source not in SOURCES:
            raise ValueError(f"parameter source must be one of {list(SOURCES)}, got {source!r}")
        reliability = self.get_parameter("reliability").value
        qos = camera_qos(reliability)  # raises naming the parameter value when wrong
        path = self.get_parameter("synth_config").value or str(config_dir() / "synth.yaml")
        self.config = load_config(SynthConfig, path)
        self.world = SynthWorld(self.config)
        self.loop = bool(self.get_parameter("loop").value)

        self._image_pubs = []
        self._info_pubs = []
        for cam in self.world.cameras:
            self._image_pubs.append(self.create_publisher(Image, f"cam{cam.camera_id}/image_raw", qos))
            self._info_pubs.append(self.create_publisher(CameraInfo, f"cam{cam.camera_id}/camera_info", qos))
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", output_qos())
        self._publish_tf_static()

        self._queue: collections.deque = collections.deque()
        self._queue_size = int(self.get_parameter("queue_size").value)
        self._cv = threading.Condition()
        self._stop = False
        self._index = 0
        self.published = 0
        self.late = 0
        self.publish_errors = 0
        self._render_s = 0.0
        self._t0 = time.monotonic()
        self._worker = threading.Thread(target=self._render_loop, name="ingest-render", daemon=True)
        self._worker.start()
        self.create_timer(1.0 / self.config.fps, self._tick)
        self.create_timer(float(self.get_parameter("diagnostics_period_s").value), self._diagnostics)
        self.get_logger().info(
            f"source={source}: {self.config.cameras} cameras {self.config.width}x{self.config.height} "
            f"at {self.config.fps:g} Hz, reliability={reliability}, config={path}")

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
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = IngestNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C, or SIGTERM from a launcher: a clean exit
    except ValueError as exc:
        # Bad parameters or config: say which, exit non-zero (the launch respawn policy decides what next).
        rclpy.logging.get_logger("ingest").fatal(str(exc))
        raise SystemExit(2) from exc
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
