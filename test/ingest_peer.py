"""Peer of test_ingest: subscribes to the ingest node's camera topics and /diagnostics, prints what arrived.

Run as ``python test/ingest_peer.py SECONDS``; prints one JSON line: per camera the colour of each image (the
pixel at (0, 0), RGB), the first CameraInfo's k and p, and the diagnostics statuses (name, level, message) in order.
"""

import json
import sys
import time

import numpy as np
import rclpy
from depthtracker.data.images import image_to_array
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image


def main() -> int:
    seconds = float(sys.argv[1])
    rclpy.init()
    node = rclpy.create_node("ingest_peer")
    qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    out = {"images": {"0": [], "1": []}, "info": {}, "diagnostics": []}

    def on_image(msg, cam):
        img = image_to_array(msg)
        out["images"][cam].append({"rgb": img[0, 0].tolist(), "shape": list(img.shape), "frame_id": msg.header.frame_id,
                                   "uniform": bool((img == img[0, 0]).all())})

    def on_info(msg, cam):
        out["info"].setdefault(cam, {"k": list(msg.k), "p": list(msg.p), "d": list(msg.d), "w": msg.width})

    for cam in ("0", "1"):
        node.create_subscription(Image, f"cam{cam}/image_raw", lambda m, c=cam: on_image(m, c), qos)
        node.create_subscription(CameraInfo, f"cam{cam}/camera_info", lambda m, c=cam: on_info(m, c), qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: out["diagnostics"].append(
        [[s.name, int.from_bytes(s.level, "little"), s.message] for s in m.status]), qos)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps(out, default=lambda o: np.asarray(o).tolist()))
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
