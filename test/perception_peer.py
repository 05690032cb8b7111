"""Peer of test_perception_node: plays a small synthetic rig into the perception node and saves what comes back.

Run as ``python test/perception_peer.py OUT.npz SECONDS [RELIABILITY]``. Renders ``FRAMES`` sets of the 2-camera world
of ``SYNTH`` (160x120) and publishes them as camN/image_raw (rgb8) + camN/camera_info with stamps 0.2 s apart, one
set at a time (the next when the heatmaps of the last came back). The first set's camera_infos go out 0.5 s after
its images, as a driver's first camera_info may come late: that set must still be answered.
Between sets it sends the two kinds of malformed image the node must count and skip: a 16UC1 image on cam0 (set 1)
and an rgb8 image of the wrong size on cam1 (set 2; such a set cannot be completed, so it is lost too). At set 3 it
asks for the target (``target/set``) on the first ground-truth box of cam0. Saves to OUT.npz: the received depth
heatmaps (stamp, frame, array), detections (stamp, camera, box, score, class), target measurements, the last
/diagnostics values (JSON) and the frames it sent.
"""

import json
import sys
import time

import numpy as np
import rclpy
from depthtracker.data.synth import SynthConfig, SynthWorld
from depthtracker.ros.conversions import camera_info_msg, header, image_msg
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from depthtracker_msgs.msg import DetectionArray, TargetMeasurement, TargetRequest

SYNTH = SynthConfig(cameras=2, width=160, height=120, fps=5.0, seconds=1.6, seed=3)
FRAMES = 8
T0 = 1_700_000_000_000_000_000
DT = 200_000_000
TARGET_SET = 3


def stamp_ns(msg_header):
    return msg_header.stamp.sec * 10**9 + msg_header.stamp.nanosec


def main() -> int:
    out_path, seconds = sys.argv[1], float(sys.argv[2])
    reliability = sys.argv[3] if len(sys.argv) > 3 else "best_effort"
    world = SynthWorld(SYNTH)
    rclpy.init()
    node = rclpy.create_node("perception_peer")
    cam_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    img_pubs = [node.create_publisher(Image, f"cam{i}/image_raw", cam_qos) for i in range(2)]
    info_pubs = [node.create_publisher(CameraInfo, f"cam{i}/camera_info", cam_qos) for i in range(2)]
    set_pub = node.create_publisher(TargetRequest, "target/set", qos)
    depth, dets, meas, diags = [], [], [], []
    node.create_subscription(Image, "depth_heatmap", depth.append, qos)
    node.create_subscription(DetectionArray, "detections", dets.append, qos)
    node.create_subscription(TargetMeasurement, "target/measurement", meas.append, qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, qos)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (all(p.get_subscription_count() for p in img_pubs)
                                               and set_pub.get_subscription_count()):
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)

    sent = []
    for k in range(FRAMES):
        s = world.render(k)
        stamp = T0 + k * DT
        if k == 1:
            img_pubs[0].publish(image_msg(np.zeros((120, 160), np.uint16), "16UC1", stamp - DT // 2, "cam0_optical"))
        infos = []
        for i, (cam, f) in enumerate(zip(world.cameras, s.frames)):
            tx = -float(cam.K[0, 0]) * world.baseline_m if i == 1 else 0.0
            infos.append((info_pubs[i], camera_info_msg(cam, stamp, tx)))
            if k > 0:
                info_pubs[i].publish(infos[-1][1])
            image = f.image if not (k == 2 and i == 1) else np.zeros((60, 80, 3), np.uint8)
            img_pubs[i].publish(image_msg(image, "rgb8", stamp, cam.frame_id))
        if k == 0:  # the first set's images come before any camera_info: the node must hold the set, not drop it
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.02)
            for pub, info in infos:
                pub.publish(info)
        sent.append(np.stack([f.image for f in s.frames]))
        if k == TARGET_SET:
            box = s.annotations[0].boxes[0]
            set_pub.publish(TargetRequest(header=header(stamp, "cam0_optical"), camera_id=0,
                                          box=[float(v) for v in box]))
        # lock-step: wait for this set's heatmaps (set 2 never completes) so no set is dropped as stale
        end = time.monotonic() + (1.0 if k == 2 else 20.0)
        while time.monotonic() < min(end, deadline) and not any(stamp_ns(m.header) == stamp for m in depth):
            rclpy.spin_once(node, timeout_sec=0.02)
    while time.monotonic() < deadline and (not diags or _value(diags[-1], "sets_processed") < FRAMES - 1):
        rclpy.spin_once(node, timeout_sec=0.05)
    end = time.monotonic() + 1.5  # one more diagnostics period
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    np.savez(
        out_path,
        sent=np.stack(sent),
        depth_stamps=np.array([stamp_ns(m.header) for m in depth], np.int64),
        depth_frames=np.array([m.header.frame_id for m in depth]),
        depth_encodings=np.array([m.encoding for m in depth]),
        depth=np.stack([np.frombuffer(m.data, np.float32).reshape(m.height, m.width) for m in depth])
        if depth else np.zeros((0, 120, 160), np.float32),
        det_stamps=np.array([stamp_ns(m.header) for m in dets], np.int64),
        det_headers=np.array([[stamp_ns(h) for h in m.camera_headers] for m in dets], np.int64),
        det_rows=np.array([[stamp_ns(m.header), d.camera_id, *d.box, d.score, d.class_id] for m in dets
                           for d in m.detections], np.float64).reshape(-1, 8),
        meas_stamps=np.array([stamp_ns(m.header) for m in meas], np.int64),
        meas_rows=np.array([[stamp_ns(m.header), m.camera_id, *c.box, c.score] for m in meas
                            for c in m.candidates], np.float64).reshape(-1, 7),
        diagnostics=json.dumps(_status(diags[-1]) if diags else {}),
    )
    node.destroy_node()
    rclpy.shutdown()
    return 0


def _status(diag):
    st = [s for s in diag.status if "perception" in s.name][0]
    return {"level": int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level),
            "message": st.message, **{kv.key: kv.value for kv in st.values}}


def _value(diag, key):
    st = [s for s in diag.status if "perception" in s.name]
    if not st:
        return 0
    return int({kv.key: kv.value for kv in st[0].values}.get(key, 0))


if __name__ == "__main__":
    sys.exit(main())
