"""Tracking node across processes: a peer plays a 2-camera scene (test/tracking_peer.py), the node answers /tracks."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import requires_ros

PEER = str(Path(__file__).with_name("tracking_peer.py"))
SHIFT = 32


def _near(a, b, tol=3.0):
    return max(abs(x - y) for x, y in zip(a, b)) <= tol


@requires_ros
@pytest.mark.ros
def test_tracking_node_tracks_two_cameras(ros_env):
    from tracking_peer import BOX_B, BOX_C, FRAMES, box_a

    node = subprocess.Popen(
        [sys.executable, "-m", "depthtracker.ros.tracking_node", "--ros-args", "-p", "max_lost_s:=0.25",
         "-p", "diagnostics_period_s:=0.2", "-p", "target.stable_frames:=2"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        peer = subprocess.run([sys.executable, PEER, "25"], env=ros_env, capture_output=True, text=True, timeout=60)
        assert node.poll() is None, "the node died"
    finally:
        node.terminate()
        log, _ = node.communicate(timeout=20)
    assert peer.returncode == 0, peer.stderr[-3000:]
    out = json.loads(peer.stdout.strip().splitlines()[-1])
    frames = out["tracks"]
    assert len(frames) == FRAMES, f"{len(frames)} TrackArrays; node log:\n{log[-3000:]}"

    a_id, b_id, c_id, target_id = (0 << SHIFT) | 1, (0 << SHIFT) | 2, (1 << SHIFT) | 1, 0 << SHIFT
    for k, tracks in enumerate(frames):
        by_id = {t["id"]: t for t in tracks}
        # Camera 0: stable ids, boxes near the inputs, depth from the heatmap of the same stamp.
        a, b = by_id[a_id], by_id[b_id]
        assert a["camera_id"] == 0 and a["frame_id"] == "cam0_optical" and a["state"] == 1
        assert _near(a["box"], box_a(k)) and _near(b["box"], BOX_B)
        assert a["depth"] == "2.5" and b["depth"] == "7.0" and b["class_id"] == 2
        assert not a["is_target"] and not b["is_target"]
        assert a["age"] == a["hits"] == k + 1  # matched in every frame since the first
        # Camera 1: seen for 4 frames, then aged with no detections: lost, removed (published once), gone.
        c = by_id.get(c_id)
        if k < 4:
            assert c["state"] == 1 and _near(c["box"], BOX_C) and c["frame_id"] == "cam1_optical"
            assert c["depth"] == "nan"  # only malformed heatmaps for camera 1
        elif k < 6:
            assert c["state"] == 2  # lost, still listed
            assert c["age"] == k + 1 and c["hits"] == 4  # aging without hits
        elif k == 6:
            assert c["state"] == 3  # removed, once
            assert c["age"] == 6 and c["hits"] == 4  # as last published
        else:
            assert c is None
        # The target: set at frame 3 on object A; its own track with the reserved id from then on.
        if k >= 5:
            t = by_id[target_id]
            assert t["is_target"] and t["camera_id"] == 0 and t["class_id"] == -1
            assert _near(t["box"], box_a(k), tol=6.0)
        assert sum(t["is_target"] for t in tracks) <= 1
    assert out["stamps"] == sorted(out["stamps"]) and len(set(out["stamps"])) == FRAMES

    diag = out["diagnostics"]
    assert diag["bad_heatmaps"] == "2" and int(diag["sets_processed"]) == FRAMES
    assert diag["cameras"] == "0,1"  # both cameras of the scene, as a list a monitor can split
    assert diag["detections_missed"] == "0"  # every array the peer sent was taken (no sequence gap)
    assert diag["detections_publishers"] == "1"  # the peer's publisher, matched on this node's side
    assert log.count("skipping an unreadable depth_heatmap") == 1, log[-3000:]
    assert "no publisher on" not in log, log[-3000:]  # the peer's detections were heard


@requires_ros
@pytest.mark.ros
def test_bad_parameter_exits_2(ros_env):
    res = subprocess.run([sys.executable, "-m", "depthtracker.ros.tracking_node", "--ros-args", "-p",
                          "target.kf_score_weight:=2.0"], env=ros_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "kf_score_weight" in res.stderr and "FATAL" in res.stderr


@requires_ros
@pytest.mark.ros
def test_no_perception_node_is_said_on_the_log(ros_env):
    node = subprocess.Popen(
        [sys.executable, "-m", "depthtracker.ros.tracking_node", "--ros-args", "-p", "unheard_warn_s:=1.0",
         "-p", "diagnostics_period_s:=0.2"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(4.0)
        assert node.poll() is None, "the node died"
    finally:
        node.terminate()
        log, _ = node.communicate(timeout=20)
    # once (throttled), naming the topic as resolved and where to look
    assert log.count("no publisher on /detections for") == 1, log[-3000:]
    assert "detections_publishers" in log
