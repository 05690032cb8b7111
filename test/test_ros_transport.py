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
