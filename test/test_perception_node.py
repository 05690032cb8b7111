"""Perception node across processes (test/perception_peer.py plays a 2-camera synthetic rig into it).

What comes back must equal the in-process ``PerceptionPipeline`` on the same images (the graph and evaluation share
every number), headers must be copied from the images, malformed images are counted and skipped with the node
alive, and a QoS mismatch is reported loudly. The DepthTrack weights here are freshly initialised (seeded): this
tests the plumbing, not accuracy (the shipped checkpoint's accuracy is measured by ``depthtracker eval``).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import requires_ros

PEER = str(Path(__file__).with_name("perception_peer.py"))


def run_node_and_peer(ros_env, tmp_path, params, seconds=90.0, reliability="best_effort"):
    args = [sys.executable, "-m", "depthtracker.ros.perception_node", "--ros-args", "-p", "cameras:=2",
            "-p", "device:=cpu", "-p", "diagnostics_period_s:=0.3", "-p", "extrinsics:=camera_info"]
    for p in params:
        args += ["-p", p]
    node = subprocess.Popen(args, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = tmp_path / "peer.npz"
    try:
        peer = subprocess.run([sys.executable, PEER, str(out), str(seconds), reliability], env=ros_env,
                              capture_output=True, text=True, timeout=seconds + 60)
        alive = node.poll() is None
    finally:
        node.terminate()
        log, _ = node.communicate(timeout=30)
    assert alive, f"the node died:\n{log[-4000:]}"
    assert peer.returncode == 0, peer.stderr[-3000:]
    return dict(np.load(out, allow_pickle=False)), log


def reference(depth_checkpoint, sent):
    """The in-process pipeline on the sets the node could complete (all but set 2), target set at set 3."""
    from depthtracker.data.extrinsics import stereo_offset_pose
    from depthtracker.data.synth import SynthWorld
    from depthtracker.perception import PerceptionConfig, PerceptionPipeline
    from depthtracker.types import CameraModel, Frame
    from perception_peer import DT, SYNTH, T0, TARGET_SET

    world = SynthWorld(SYNTH)
    cams = []
    for i, c in enumerate(world.cameras):
        P = np.zeros((3, 4))
        P[:, :3] = c.K
        P[0, 3] = -c.K[0, 0] * world.baseline_m if i == 1 else 0.0
        cams.append(CameraModel(i, c.width, c.height, c.K, stereo_offset_pose(P), c.frame_id))
    pipe = PerceptionPipeline.from_config(PerceptionConfig(depth_checkpoint=str(depth_checkpoint), device="cpu",
                                                           target_score=0.0))
    out = {}
    for k, images in enumerate(sent):
        if k == 2:
            continue
        stamp = T0 + k * DT
        out[stamp] = pipe.process([Frame(im, i, stamp, f"cam{i}_optical") for i, im in enumerate(images)], cams)
        if k == TARGET_SET:
            pipe.set_target(0, world.render(k).annotations[0].boxes[0], stamp)
    return out


@requires_ros
@pytest.mark.ros
def test_outputs_equal_the_in_process_pipeline(ros_env, tmp_path, depth_checkpoint):
    from perception_peer import FRAMES

    # target_score 0: untrained weights score low, and every candidate is compared
    got, log = run_node_and_peer(ros_env, tmp_path, [f"depth_checkpoint:={depth_checkpoint}", "target_score:=0.0"])
    ref = reference(depth_checkpoint, got["sent"])
    stamps = sorted(ref)
    # Depth: one 32FC1 heatmap per camera and set, header = that camera's image header, values = in-process.
    assert set(got["depth_encodings"].tolist()) == {"32FC1"}
    pairs = list(zip(got["depth_stamps"].tolist(), got["depth_frames"].tolist()))
    assert sorted(pairs) == sorted((s, f"cam{i}_optical") for s in stamps for i in range(2)), log[-3000:]
    for (stamp, frame), depth in zip(pairs, got["depth"]):
        expected = ref[stamp].depths[int(frame[3])].depth
        np.testing.assert_allclose(depth, expected, rtol=1e-4, atol=1e-4)
        assert np.isfinite(depth).all() and (depth > 0).all()
    # Detections: one array per set, camera_headers of both images, the same boxes and scores.
    assert got["det_stamps"].tolist() == stamps
    assert all(h.tolist() == [s, s] for h, s in zip(got["det_headers"], stamps))
    rows = got["det_rows"]
    n_ref = 0
    for stamp in stamps:
        for dets in ref[stamp].detections:
            mine = rows[(rows[:, 0] == stamp) & (rows[:, 1] == dets.camera_id)]
            assert len(mine) == len(dets)
            np.testing.assert_allclose(mine[:, 2:6], dets.boxes, atol=1e-2)
            np.testing.assert_allclose(mine[:, 6], dets.scores, atol=1e-4)
            assert mine[:, 7].tolist() == dets.labels.tolist()
            n_ref += len(dets)
    assert n_ref > 0, "the shipped detector found nothing: the comparison would be empty"
    # Target: candidates for cam0 from the set after the request on, equal to the in-process search.
    meas = got["meas_rows"]
    target_stamps = got["meas_stamps"].tolist()
    assert target_stamps == [s for s in stamps if ref[s].target is not None], log[-3000:]
    assert len(target_stamps) == FRAMES - 4
    for stamp in target_stamps:
        mine = meas[meas[:, 0] == stamp]
        tc = ref[stamp].target
        assert len(mine) == len(tc.scores) > 0 and (mine[:, 1] == 0).all()
        np.testing.assert_allclose(mine[:, 2:6], tc.boxes, atol=1e-2)
        np.testing.assert_allclose(mine[:, 6], tc.scores, atol=1e-4)
    # Malformed inputs: a 16UC1 image and an image of the wrong size, each counted, logged once, node alive.
    diag = json.loads(str(got["diagnostics"]))
    assert int(diag["bad_images"]) == 2 and int(diag["sets_processed"]) == FRAMES - 1, diag
    assert int(diag["sets_without_camera_info"]) == 0, diag  # set 0 waited for its late camera_info
    assert diag["device"] == "cpu" and int(diag["qos_incompatible"]) == 0
    # the subscriptions' side of the match: every camera topic hears the peer's one publisher
    assert int(diag["camera_publishers"]) == 1 and diag["cameras_unheard"] == "none", diag
    # lock-step sending never fills a queue: every image the peer sent was taken (sequence numbers without a gap)
    assert diag["images_missed"] == "0", diag
    assert log.count("skipping an unreadable image") == 1 and log.count("camera_info says") == 1, log[-3000:]
    assert log.count("first set published: 2 camera(s)") == 1, log[-3000:]  # the pipeline is live, said once
    assert "no publisher on" not in log, log[-3000:]


@requires_ros
@pytest.mark.ros
def test_qos_mismatch_is_loud(ros_env, tmp_path):
    # The node asks for reliable camera topics; the peer's driver offers best-effort: nothing can flow, and the
    # node must say so on its log and on /diagnostics (ERROR) instead of waiting silently.
    got, log = run_node_and_peer(ros_env, tmp_path, ["reliability:=reliable", "depth_checkpoint:=none",
                                                     "unheard_warn_s:=1.0"], seconds=8.0, reliability="best_effort")
    diag = json.loads(str(got["diagnostics"]))
    assert int(diag["qos_incompatible"]) >= 1 and diag["level"] == 2, diag
    assert "incompatible" in diag["message"] and "reliability" in diag["message"]
    assert "ERROR" in log and "incompatible with this subscription" in log
    assert int(diag["sets_processed"]) == 0 and len(got["depth"]) == 0
    # discovered but never matched: /diagnostics names every camera topic as unheard
    assert int(diag["camera_publishers"]) == 0, diag
    assert diag["cameras_unheard"].split() == [f"/cam{i}/{k}" for i in range(2) for k in ("image_raw", "camera_info")]
    # ... and so does the log, once the node has been active unheard_warn_s (throttled: once here)
    assert log.count("no publisher on /cam0/image_raw /cam0/camera_info /cam1/image_raw /cam1/camera_info") == 1, \
        log[-3000:]
    assert "first set published" not in log


SILENT_DRIVER = """
import sys, time
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
rclpy.init()
node = rclpy.create_node("silent_driver")
pubs = [node.create_publisher(t, f"cam{i}/{k}", qos_profile_sensor_data)
        for i in range(2) for k, t in (("image_raw", Image), ("camera_info", CameraInfo))]
deadline = time.monotonic() + 30
while time.monotonic() < deadline and not all(p.get_subscription_count() for p in pubs):
    rclpy.spin_once(node, timeout_sec=0.05)
print("matched" if all(p.get_subscription_count() for p in pubs) else "never matched", flush=True)
time.sleep(float(sys.argv[1]))  # publishes nothing: a stalled driver
"""


@requires_ros
@pytest.mark.ros
def test_matched_but_silent_cameras_are_said_on_the_log(ros_env):
    node = subprocess.Popen([sys.executable, "-m", "depthtracker.ros.perception_node", "--ros-args",
                             "-p", "cameras:=2", "-p", "device:=cpu", "-p", "depth_checkpoint:=none",
                             "-p", "detector_checkpoint:=none", "-p", "diagnostics_period_s:=0.3",
                             "-p", "unheard_warn_s:=1.0"],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        driver = subprocess.run([sys.executable, "-c", SILENT_DRIVER, "4"], env=ros_env, capture_output=True,
                                text=True, timeout=90)
    finally:
        node.terminate()
        log, _ = node.communicate(timeout=30)
    assert driver.stdout.strip() == "matched", driver.stderr[-2000:]
    # each image topic is named with how long it has been quiet; every topic has its publisher
    line = next((x for x in log.splitlines() if "no image on" in x), "")
    assert "/cam0/image_raw (" in line and "/cam1/image_raw (" in line and "publisher is matched" in line, log[-3000:]


@requires_ros
@pytest.mark.ros
def test_missing_checkpoint_exits_2(ros_env, tmp_path):
    res = subprocess.run([sys.executable, "-m", "depthtracker.ros.perception_node", "--ros-args", "-p",
                          f"depth_checkpoint:={tmp_path / 'nope.safetensors'}", "-p", "device:=cpu"],
                         env=ros_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "nope.safetensors" in res.stderr and "does not exist" in res.stderr
