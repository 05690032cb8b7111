"""Real rclpy + Fast DDS across processes: a TrackArray published in one process arrives intact in another."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import requires_ros

PEER = str(Path(__file__).with_name("ros_peer.py"))


@requires_ros
@pytest.mark.ros
def test_track_array_crosses_processes(ros_env):
    from ros_peer import known_tracks

    topic = "/test/tracks"
    pub = subprocess.Popen([sys.executable, PEER, "pub", topic, "40"], env=ros_env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sub = subprocess.run([sys.executable, PEER, "sub", topic, "30"], env=ros_env, capture_output=True,
                             text=True, timeout=60)
    finally:
        pub.kill()
        pub.communicate()
    assert sub.returncode == 0, f"nothing arrived: {sub.stderr[-3000:]}"
    received = json.loads(sub.stdout.strip().splitlines()[-1])
    assert len(received) == 3
    seqs = []
    for msg in received:
        seq = msg["stamp_ns"] - 1_700_000_000_000_000_000
        seqs.append(seq)
        want = known_tracks(seq)
        assert msg["ids"] == want.ids.tolist()
        np.testing.assert_array_equal(msg["boxes"], want.boxes)
        np.testing.assert_array_equal(msg["velocities"], want.velocities)
        np.testing.assert_array_equal(np.float32(msg["scores"]), want.scores)
        assert msg["labels"] == [0, 2] and msg["states"] == [1, 2] and msg["camera_id"] == 2
        assert msg["depths"] == ["3.25", "nan"] and msg["is_target"] == [True, False]
        assert msg["ages"] == [12, 40] and msg["hits"] == [12, 31]
        assert msg["frame_id"] == "cam2_optical"
    assert seqs == sorted(seqs) and len(set(seqs)) == 3  # in order, no duplicates (reliable QoS)


@requires_ros
def test_missed_messages_counts_sequence_gaps_per_publisher():
    from depthtracker.ros.qos import MissedMessages

    def info(seq, gid=b"a"):
        return {"publication_sequence_number": seq, "publisher_gid": {"data": gid, "implementation_identifier": "x"}}

    m = MissedMessages()
    assert [m.update(info(s)) for s in (40, 41, 44)] == [0, 0, 2]  # counting starts at the first one heard
    assert m.update(info(7, b"b")) == 0 and m.update(info(9, b"b")) == 1  # a second publisher has its own numbers
    assert m.missed == 3
    assert m.update(info(43)) == 0 and m.missed == 2  # late, not lost: taken back
    assert m.update(info(44)) == 0 and m.missed == 2  # a duplicate changes nothing
    assert not m.unsupported
    assert m.update({"publication_sequence_number": None, "publisher_gid": None}) == 0 and m.unsupported


# One process, one node: take one message, then publish a burst into the keep-last queue without spinning, then take
# what is left. The publisher's sequence numbers must show the overwritten ones.
_OVERWRITE = """
import json, sys, time
import rclpy
from depthtracker.ros.qos import MissedMessages, camera_qos
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node("missed_probe")
qos = camera_qos(sys.argv[1], depth=5)
missed, taken = MissedMessages(), []
node.create_subscription(String, "missed_probe", lambda m, info: (taken.append(m.data), missed.update(info)), qos)
pub = node.create_publisher(String, "missed_probe", qos)
end = time.monotonic() + 20
while pub.get_subscription_count() < 1 and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
def drain(want):
    end = time.monotonic() + 10
    while len(taken) < want and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
pub.publish(String(data="0"))
drain(1)
for k in range(1, 21):
    pub.publish(String(data=str(k)))
time.sleep(0.5)
drain(6)
print(json.dumps({"taken": taken, "missed": missed.missed, "unsupported": missed.unsupported}))
"""


@requires_ros
@pytest.mark.ros
@pytest.mark.parametrize("reliability", ["reliable", "best_effort"])
def test_images_overwritten_in_the_queue_are_counted_as_missed(ros_env, reliability):
    run = subprocess.run([sys.executable, "-c", _OVERWRITE, reliability], env=ros_env, capture_output=True,
                         text=True, timeout=90)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["taken"] == ["0"] + [str(k) for k in range(16, 21)], got  # keep last 5: 1..15 overwritten
    assert got["missed"] == 15 and not got["unsupported"], got
