"""Ingest node with live sources across processes: a folder camera publishes its images with the calibration's
CameraInfo; a camera whose folder is missing reports ERROR, is retried, and recovers when the folder appears."""

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from helpers import requires_ros
from test_sources import CALIB, frame

PEER = str(Path(__file__).with_name("ingest_peer.py"))


def write_pngs(folder, n=3):
    folder.mkdir()
    for k in range(n):
        cv2.imwrite(str(folder / f"{k:03d}.png"), cv2.cvtColor(frame(k), cv2.COLOR_RGB2BGR))


@requires_ros
@pytest.mark.ros
def test_folder_sources_publish_and_recover(ros_env, tmp_path):
    write_pngs(tmp_path / "cam0")
    (tmp_path / "cal0.yaml").write_text(CALIB)
    node = subprocess.Popen(
        [sys.executable, "-m", "depthtracker.ros.ingest", "--ros-args",
         "-p", f"cameras:=['folder:{tmp_path / 'cam0'}', 'folder:{tmp_path / 'cam1'}']",
         "-p", f"calibrations:=['{tmp_path / 'cal0.yaml'}']", "-p", "hfov_deg:=90.0", "-p", "fps:=10.0",
         "-p", "reliability:=reliable", "-p", "retry_initial_s:=0.2", "-p", "retry_max_s:=0.4",
         "-p", "diagnostics_period_s:=0.2"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        peer = subprocess.Popen([sys.executable, PEER, "7"], env=ros_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(4.0)
        write_pngs(tmp_path / "cam1", n=2)  # camera 1's source appears: the node must pick it up
        peer_out, peer_err = peer.communicate(timeout=30)
        assert node.poll() is None, "the node died"
    finally:
        node.terminate()
        log, _ = node.communicate(timeout=20)
    assert peer.returncode == 0, peer_err[-2000:]
    out = json.loads(peer_out.strip().splitlines()[-1])

    colours = [tuple(frame(k)[0, 0].tolist()) for k in range(3)]
    cam0 = out["images"]["0"]
    assert len(cam0) >= 10, log[-3000:]
    for img in cam0:
        assert img["shape"] == [48, 64, 3] and img["uniform"] and img["frame_id"] == "cam0_optical"
    seq = [colours.index(tuple(img["rgb"])) for img in cam0]  # every image is one of the PNGs, exact (lossless)
    assert all((b - a) % 3 in (0, 1) for a, b in zip(seq, seq[1:]))  # in file order, looping (drops allowed)
    info0 = out["info"]["0"]
    assert info0["k"][0] == 50.0 and info0["p"][3] == -3.0 and info0["d"][0] == -0.1  # from the calibration file
    # Camera 1: ERROR while its folder is missing, then images and OK; the pinhole from hfov 90 deg: fx = w / 2.
    levels = [s[1] for d in out["diagnostics"] for s in d if s[0].endswith("cam1")]
    assert levels[0] == 2 and levels[-1] == 0, out["diagnostics"]
    assert any("no such folder" in s[2] for d in out["diagnostics"] for s in d)
    assert len(out["images"]["1"]) >= 3
    assert out["info"]["1"]["k"][0] == pytest.approx(32.0) and out["info"]["1"]["w"] == 64
    assert {tuple(i["rgb"]) for i in out["images"]["1"]} <= set(colours[:2])


@requires_ros
@pytest.mark.ros
def test_bad_calibration_exits_2(ros_env, tmp_path):
    (tmp_path / "bad.yaml").write_text("image_width: 64\n")
    res = subprocess.run([sys.executable, "-m", "depthtracker.ros.ingest", "--ros-args", "-p",
                          f"cameras:=['folder:{tmp_path}']", "-p", f"calibrations:=['{tmp_path / 'bad.yaml'}']"],
                         env=ros_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "image_height" in res.stderr
