"""Peer of test_tracking_node: plays a scripted 2-camera scene into the tracking node and prints what comes back.

Run as ``python test/tracking_peer.py SECONDS``. Camera 0 sees two objects (one moving right) over a 32FC1 heatmap
that is 2.5 m everywhere but 7.0 m on the still object; camera 1 sees one object for 4 frames, then nothing, and has
only malformed heatmaps (wrong encoding, short data). The target is set on camera 0's moving object at frame 3 and
measured from then on. Prints one JSON line: the received TrackArrays and the last /diagnostics values.
"""

import json
import sys
import time

import numpy as np
import rclpy
from depthtracker.ros.conversions import header, image_msg
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from depthtracker_msgs.msg import Detection, DetectionArray, TargetMeasurement, TargetRequest, TrackArray

T0 = 1_700_000_000_000_000_000
DT = 100_000_000  # 10 Hz stamps
FRAMES = 12
H, W = 120, 200


def box_a(k):  # camera 0, moving right 2 px per frame
    return [20.0 + 2 * k, 30.0, 60.0 + 2 * k, 90.0]


BOX_B = [120.0, 20.0, 160.0, 60.0]  # camera 0, still, at 7 m
BOX_C = [50.0, 60.0, 90.0, 110.0]  # camera 1, frames 0..3 only


def detection(cam, box, score=0.9, class_id=0):
    return Detection(camera_id=cam, frame_id=f"cam{cam}_optical", box=box, score=score, class_id=class_id)


def main() -> int:
    seconds = float(sys.argv[1])
    rclpy.init()
    node = rclpy.create_node("tracking_peer")
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    det_pub = node.create_publisher(DetectionArray, "detections", qos)
    depth_pub = node.create_publisher(Image, "depth_heatmap", qos)
    set_pub = node.create_publisher(TargetRequest, "target/set", qos)
    meas_pub = node.create_publisher(TargetMeasurement, "target/measurement", qos)
    got, diags = [], []
    node.create_subscription(TrackArray, "tracks", got.append, qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, qos)
    deadline = time.monotonic() + seconds
    pubs = (det_pub, depth_pub, set_pub, meas_pub)
    while time.monotonic() < deadline and not all(p.get_subscription_count() for p in pubs):
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.3)  # let the node's publishers match ours too

    heat0 = np.full((H, W), 2.5, np.float32)
    heat0[20:60, 120:160] = 7.0
    for k in range(FRAMES):
        stamp = T0 + k * DT
        depth_pub.publish(image_msg(heat0, "32FC1", stamp, "cam0_optical"))
        if k == 1:  # wrong encoding
            depth_pub.publish(image_msg(np.zeros((H, W), np.uint8), "mono8", stamp, "cam1_optical"))
        if k == 2:  # size mismatch: fewer bytes than height x step
            bad = image_msg(np.zeros((H, W), np.float32), "32FC1", stamp, "cam1_optical")
            bad.data = bytes(100)
            depth_pub.publish(bad)
        if k == 3:
            set_pub.publish(TargetRequest(header=header(stamp, "cam0_optical"), camera_id=0, box=box_a(k)))
        if k > 3:
            meas = TargetMeasurement(header=header(stamp, "cam0_optical"), camera_id=0, active=True,
                                     candidates=[detection(0, box_a(k), 0.95)])
            meas_pub.publish(meas)
        rclpy.spin_once(node, timeout_sec=0.03)
        msg = DetectionArray(header=header(stamp, "cam0_optical"),
                             camera_headers=[header(stamp, "cam0_optical"), header(stamp + 1000, "cam1_optical")])
        msg.detections = [detection(0, box_a(k)), detection(0, BOX_B, 0.8, class_id=2)]
        if k < 4:
            msg.detections.append(detection(1, BOX_C))
        det_pub.publish(msg)
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.01)
    while time.monotonic() < deadline and (len(got) < FRAMES or not diags or _sets(diags[-1]) < FRAMES):
        rclpy.spin_once(node, timeout_sec=0.05)
    out = {"tracks": [[{"id": t.id, "camera_id": t.camera_id, "frame_id": t.frame_id, "box": [float(v) for v in t.box],
                        "state": t.state, "depth": str(t.depth), "is_target": t.is_target, "class_id": t.class_id,
                        "age": t.age, "hits": t.hits}
                       for t in m.tracks] for m in got],
           "stamps": [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got],
           "diagnostics": {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}}
    print(json.dumps(out))
    node.destroy_node()
    rclpy.shutdown()
    return 0


def _sets(diag):
    values = {kv.key: kv.value for kv in diag.status[0].values}
    return int(values.get("sets_processed", 0))


if __name__ == "__main__":
    sys.exit(main())
