"""Bag play and record through rclpy across processes: what is recorded is bit-exact what was played."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from depthtracker.data.synth import SynthConfig
from depthtracker.ros.launch_plan import PLAYED_LINE
from helpers import requires_ros
from rosbags.rosbag2 import Reader

CMD = [sys.executable, "-m", "depthtracker.cli"]
TOPICS = [f"/cam{i}/{n}" for i in range(2) for n in ("image_raw", "camera_info", "depth_gt", "objects_gt")]


@pytest.fixture(scope="module")
def synth_bag(make_synth_bag):
    return make_synth_bag(SynthConfig(cameras=2, width=64, height=48, fps=10.0, seconds=1.0, num_objects=2))


def messages(bag: Path) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    with Reader(bag) as reader:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append(bytes(raw))
    return out


def _played(stdout: str) -> tuple[int, float, float]:
    m = re.search(r"played (\d+) messages in ([\d.]+) s of wall time \(bag span ([\d.]+) s", stdout)
    assert m, stdout
    return int(m.group(1)), float(m.group(2)), float(m.group(3))


@requires_ros
@pytest.mark.ros
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_recorded_bag_is_bit_exact(ros_env, synth_bag, tmp_path, storage):
    out = tmp_path / "rec"
    rec = subprocess.Popen([*CMD, "record", "--out", str(out), "--storage", storage, "--topics", *TOPICS, "/clock"],
                           env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the player waits for the recorder's subscriptions (the recorder first waits for the player's topics)
        play = subprocess.run([*CMD, "play", str(synth_bag), "--clock", "--reliability", "reliable", "--delay",
                               "0.5", "--wait-subscribers", "30"], env=ros_env, capture_output=True, text=True,
                              timeout=90)
        assert play.returncode == 0, play.stderr[-2000:]
        time.sleep(0.5)
        assert not out.exists()  # still recording: nothing under the bag's name yet
        rec.send_signal(signal.SIGINT)
        rec_out, rec_err = rec.communicate(timeout=30)
    finally:
        rec.kill()
    assert rec.returncode == 0, rec_err[-2000:]
    assert "wrote" in rec_out and out.is_dir()
    assert "missed (sent, never recorded): none" in rec_out, rec_out  # counted from sequence numbers: no gap
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the hidden partial folder is gone

    original, recorded = messages(synth_bag), messages(out)
    assert "/tf_static" in original and "/tf_static" not in recorded  # tf2_msgs is not installed here: skipped
    for topic in TOPICS:
        assert len(recorded[topic]) == len(original[topic]) == 10, topic
        # Bit-exact, but for the zero bytes DDS appends to pad a serialized payload to a multiple of 4 (a real
        # rosbag2 recording stores the same padded payload; deserialisation ignores it).
        padded = [raw + b"\0" * (-len(raw) % 4) for raw in original[topic]]
        assert recorded[topic] == padded, f"{topic}: payload bytes differ"
    # /clock was published while playing: bag times, non-decreasing, covering the bag.
    from depthtracker.data.bags import typestore

    store = typestore()
    clocks = [store.deserialize_cdr(raw, "rosgraph_msgs/msg/Clock").clock for raw in recorded["/clock"]]
    ns = [c.sec * 10**9 + c.nanosec for c in clocks]
    with Reader(synth_bag) as reader:
        start, end = reader.start_time, reader.end_time
    assert ns == sorted(ns) and ns[0] >= start and ns[-1] == end - 1 and len(ns) > 20  # end_time is exclusive
    assert _played(play.stdout)[0] == 80


@requires_ros
@pytest.mark.ros
@pytest.mark.parametrize("rate", [2.0, 0.5])
def test_play_rate_is_respected(ros_env, synth_bag, rate):
    res = subprocess.run([*CMD, "play", str(synth_bag), "--rate", str(rate)], env=ros_env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    count, wall, span = _played(res.stdout)
    assert count == 80 and span == pytest.approx(0.9)
    assert wall == pytest.approx(span / rate, abs=0.1 + 0.05 * span / rate)


@requires_ros
@pytest.mark.ros
def test_play_waits_for_subscribers_then_plays_anyway(ros_env, synth_bag):
    t = time.monotonic()
    res = subprocess.run([*CMD, "play", str(synth_bag), "--rate", "5", "--wait-subscribers", "1.5", "--subscribers",
                          "2", "--wait-perception"], env=ros_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert time.monotonic() - t > 1.5 and "fewer than 2 subscriber(s)" in res.stderr and "playing anyway" in res.stderr
    assert "no perception node reported camera_publishers >= 1" in res.stderr  # nor did a perception node hear it
    assert _played(res.stdout)[0] == 80  # nobody listens: the wait ran out, then the whole bag was played
    assert f"{PLAYED_LINE}: 80 messages" in res.stderr  # the launcher's cue, logged before the teardown


PERCEPTION_SCRIPT = """
import sys, threading, time
from depthtracker.ros.play import play
from depthtracker.ros.qos import camera_qos, output_qos
from depthtracker.ros.runtime import standalone_node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image

bag, mode = sys.argv[1], sys.argv[2]
got, reported_at = [], []
stop = threading.Event()

def spin():
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.02)

def report():  # a perception node's /diagnostics: it hears its camera topics from 0.5 s on
    time.sleep(0.5)
    reported_at.append(time.monotonic())
    status = DiagnosticStatus(name="/perception: perception", values=[KeyValue(key="camera_publishers", value="1")])
    while not stop.is_set():
        diag.publish(DiagnosticArray(status=[status]))
        time.sleep(0.1)

try:  # waited for within wait_subscribers_s: without one it is refused, naming the fix
    play(bag, wait_perception=True)
    refused = 0
except ValueError as exc:
    refused = int("--wait-subscribers S" in str(exc))

with standalone_node("perception_probe", stop) as (node, executor):
    node.create_subscription(Image, "/cam0/image_raw", lambda m: got.append(time.monotonic()), camera_qos("reliable"))
    diag = node.create_publisher(DiagnosticArray, "/diagnostics", output_qos())
    spinner = threading.Thread(target=spin)
    spinner.start()
    if mode == "reports":
        threading.Thread(target=report, daemon=True).start()
    t0 = time.monotonic()
    res = play(bag, rate=5.0, topics=["/cam0/image_raw"], reliability="reliable", wait_subscribers_s=1.5, node=node,
               wait_perception=True, log=lambda line: print("LOG", line))
    time.sleep(0.3)
    stop.set()
    spinner.join()
print("RESULT", res.counts["/cam0/image_raw"], len(got), round(min(got) - t0, 2),
      int(bool(reported_at) and min(got) > reported_at[0]), refused)
"""


@requires_ros
@pytest.mark.ros
@pytest.mark.parametrize("mode", ["reports", "silent"])
def test_play_waits_for_the_perception_node_to_hear_it(ros_env, synth_bag, mode):
    # wait_perception holds the first message until a perception node reports camera_publishers >= 1 on /diagnostics
    # (the subscribers' side of the match); without such a report it gives up after wait_subscribers_s, says so, and
    # plays the whole bag
    res = subprocess.run([sys.executable, "-c", PERCEPTION_SCRIPT, str(synth_bag), mode], env=ros_env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    played, received, first_s, after_report, refused = res.stdout.split("RESULT")[1].split()
    assert int(played) == int(received) == 10 and int(refused) == 1, res.stdout
    if mode == "reports":
        assert int(after_report) == 1 and "playing anyway" not in res.stdout, res.stdout  # first image after it
    else:
        assert float(first_s) > 1.5, res.stdout  # waited the whole wait, then played anyway
        assert "no perception node reported camera_publishers >= 1" in res.stdout and "playing anyway" in res.stdout


@requires_ros
@pytest.mark.ros
def test_play_offset_topics_and_errors(ros_env, synth_bag, tmp_path):
    res = subprocess.run([*CMD, "play", str(synth_bag), "--rate", "5", "--start-offset", "0.5", "--topics",
                          "/cam0/image_raw", "cam1/image_raw"], env=ros_env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    count, _, span = _played(res.stdout)
    assert count == 2 * 5 and span == pytest.approx(0.4)  # frames at 0.5 .. 0.9 s, two topics
    bad = subprocess.run([*CMD, "play", str(tmp_path)], env=ros_env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a rosbag2" in bad.stderr
    bad = subprocess.run([*CMD, "play", str(synth_bag), "--wait-perception"], env=ros_env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "--wait-subscribers S" in bad.stderr, bad.stderr[-2000:]
    missing = subprocess.run([*CMD, "record", "--out", str(tmp_path / "x"), "--topics", "/nobody", "--wait", "0.5"],
                             env=ros_env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "/nobody" in missing.stderr and not (tmp_path / "x").exists()


def test_commands_module_loads_no_ros():
    code = ("import argparse, sys\nfrom depthtracker.ros import commands\n"
            "p = argparse.ArgumentParser(); commands.register(p.add_subparsers())\n"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'rclpy' or m.split('.')[0].endswith('_msgs')]\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    help_text = subprocess.run([*CMD, "play", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "--start-offset" in help_text and "--reliability" in help_text
