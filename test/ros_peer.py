"""A ROS peer process for transport tests: ``pub`` publishes a known TrackArray, ``sub`` prints what it receives.

Run as ``python test/ros_peer.py pub|sub TOPIC SECONDS``; the test sets ROS_DOMAIN_ID and ROS_LOG_DIR.
"""

import json
import sys
import time

import numpy as np
import rclpy
from depthtracker.ros.conversions import tracks_from_msg, tracks_to_msg
from depthtracker.types import Tracks
from rclpy.qos import QoSProfile, ReliabilityPolicy

from depthtracker_msgs.msg import TrackArray


def known_tracks(seq: int) -> Tracks:
    return Tracks(
        ids=np.array([(2 << 32) | 1, (2 << 32) | 2], np.int64),
        boxes=np.array([[10, 20, 110, 220], [300.5, 40.25, 340, 90]], np.float32),
        velocities=np.array([[1, 2, 3, 4], [-5, 0, -5, 0]], np.float32),
        scores=np.array([0.9, 0.4], np.float32),
        labels=np.array([0, 2], np.int64),
        states=np.array([1, 2], np.int8),
        camera_id=2,
        stamp_ns=1_700_000_000_000_000_000 + seq,
        depths=np.array([3.25, np.nan], np.float32),
        is_target=np.array([True, False]),
        ages=np.array([12, 40], np.int64),
        hits=np.array([12, 31], np.int64),
    )


def main() -> int:
    mode, topic, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node(f"transport_{mode}")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    deadline = time.monotonic() + seconds
    try:
        if mode == "pub":
            pub = node.create_publisher(TrackArray, topic, qos)
            seq = 0
            while time.monotonic() < deadline:
                pub.publish(tracks_to_msg(known_tracks(seq), "cam2_optical"))
                seq += 1
                rclpy.spin_once(node, timeout_sec=0.05)
        else:
            got = []
            node.create_subscription(TrackArray, topic, got.append, qos)
            while time.monotonic() < deadline and len(got) < 3:
                rclpy.spin_once(node, timeout_sec=0.1)
            out = []
            for msg in got:
                t = tracks_from_msg(msg)
                out.append({"ids": t.ids.tolist(), "boxes": t.boxes.tolist(), "velocities": t.velocities.tolist(),
                            "scores": t.scores.tolist(), "labels": t.labels.tolist(), "states": t.states.tolist(),
                            "camera_id": t.camera_id, "stamp_ns": t.stamp_ns, "depths": [str(d) for d in t.depths],
                            "is_target": t.is_target.tolist(), "ages": t.ages.tolist(), "hits": t.hits.tolist(),
                            "frame_id": msg.tracks[0].frame_id})
            print(json.dumps(out))
            return 0 if got else 1
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
