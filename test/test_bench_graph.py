"""bench/graph.py (camera -> /tracks benchmark; its ROS path in bench/graph_ros.py, what both paths share in
bench/graph_sets.py): its report's structure, the peak search, and a short ROS run.

No timing is asserted here (timings live in bench/); these check that the benchmark runs, counts what it sent
and what came back, and writes every field the results page reads.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import load_bench, requires_ros

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "graph.py"
SMALL = ["--cameras", "1", "--width", "64", "--height", "48", "--depth-checkpoint", "none", "--device", "cpu"]


@pytest.fixture
def graph_module(monkeypatch):
    return load_bench(monkeypatch, "graph")


@pytest.fixture
def graph_ros(monkeypatch):
    return load_bench(monkeypatch, "graph_ros")


@pytest.fixture
def graph_sets(monkeypatch):
    return load_bench(monkeypatch, "graph_sets")


# Runs the script as __main__, then fails when rclpy was imported: the in-process path must run without ROS wheels.
NO_ROS = """import runpy, sys
sys.path.insert(0, sys.argv[1])
sys.argv = sys.argv[2:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    if exc.code:
        raise
assert "rclpy" not in sys.modules, "the in-process path imported rclpy"
"""


def run_script(args, tmp_path, env=None, timeout=120, forbid_ros=False):
    out = tmp_path / "graph.json"
    prefix = [sys.executable, "-c", NO_ROS, str(SCRIPT.parent)] if forbid_ros else [sys.executable]
    proc = subprocess.run([*prefix, str(SCRIPT), *args, "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def check_common(report, path):
    assert report["benchmark"] == "bench/graph.py"
    assert {"summary", "cpu", "logical_cores", "torch", "torch_threads", "cuda", "gpu"} <= set(report["machine"])
    s = report["settings"]
    assert (s["path"], s["cameras"], s["width"], s["height"]) == (path, 1, 64, 48)
    assert s["depth_checkpoint"] == "none" and s["detector_checkpoint"].endswith("hsvdet-n.safetensors")
    assert report["device"] == "cpu"
    assert {"peak_sets_per_s", "peak_camera_fps", "peak_bound", "latency_rate_hz", "latency_p50_ms",
            "latency_p99_ms", "latency_drop_fraction", "latency_note"} <= set(report["summary"])
    assert report["targets"] == []  # DESIGN.md states none for a 1 x 64x48 rig


@pytest.mark.slow
def test_inprocess_report(tmp_path):
    report, text = run_script(["--path", "inprocess", *SMALL, "--sets", "2", "--warmup", "0"], tmp_path,
                              forbid_ros=True)
    check_common(report, "inprocess")
    (run,) = report["runs"]
    assert run["kind"] == "back_to_back" and run["sets"] == 2 and run["warmup_sets"] == 0
    assert run["per_set_ms"]["n"] == 2 and run["tracking_ms"]["n"] == 2
    assert set(run["stage_ms"]) == {"detect"}  # depth is off
    assert run["per_set_ms"]["p50"] <= run["per_set_ms"]["p99"] <= run["per_set_ms"]["max"]
    assert run["sets_per_s"] > 0 and run["camera_frames_per_s"] == pytest.approx(run["sets_per_s"])
    assert report["summary"]["peak_sets_per_s"] == run["sets_per_s"]
    assert "per set (total)" in text and "no ROS transport" in text


def test_peak_search_doubles_then_bisects(graph_module, graph_ros):
    """A fake graph that keeps up to 37 sets/s: 5, 10, 20, 40 (fails), then 30, 35, 37.5 (fails)."""
    asked = []

    def run(rate, kind):
        asked.append(rate)
        return {"requested_hz": rate, "achieved_input_hz": rate, "drop_fraction": 0.0 if rate <= 37 else 0.5,
                "loader_bound": False}

    args = graph_module.parse_args(["--path", "inprocess", *SMALL, "--start-rate", "5", "--bisect-steps", "3"])
    best, bound, runs = graph_ros.peak_search(run, args)
    assert asked == [5, 10, 20, 40, 30, 35, 37.5]
    assert best["requested_hz"] == 35 and bound == "graph" and len(runs) == 7


def test_peak_search_goes_down_and_stops_at_the_loader(graph_module, graph_ros):
    args = graph_module.parse_args(["--path", "inprocess", *SMALL, "--start-rate", "8", "--min-rate", "1"])
    slow = graph_ros.peak_search(lambda r, k: {"requested_hz": r, "drop_fraction": 0.0 if r <= 2 else 1.0,
                                                  "loader_bound": False}, args)
    assert [r["requested_hz"] for r in slow[2]][:3] == [8, 4, 2] and slow[1] == "graph"
    never = graph_ros.peak_search(lambda r, k: {"requested_hz": r, "drop_fraction": 1.0}, args)
    assert never[0] is None and never[1] == "below min_rate"
    bound = graph_ros.peak_search(lambda r, k: {"requested_hz": r, "drop_fraction": 0.0,
                                                   "loader_bound": r >= 16}, args)
    assert bound[0]["requested_hz"] == 16 and bound[1] == "loader"


def test_ping_pong_loops_without_a_jump(graph_sets):
    assert graph_sets.ping_pong(4) == [0, 1, 2, 3, 2, 1]
    assert graph_sets.ping_pong(1) == [0]


@requires_ros
@pytest.mark.ros
@pytest.mark.slow
def test_ros_path_answers_sets(ros_env, tmp_path):
    args = ["--path", "ros", *SMALL, "--no-peak", "--rate", "5", "--duration", "2", "--warmup", "1", "--drain", "1",
            "--domain-id", ros_env["ROS_DOMAIN_ID"], "--startup-timeout", "40"]
    report, text = run_script(args, tmp_path, env=ros_env, timeout=90)
    check_common(report, "ros")
    assert report["environment"]["ROS_DOMAIN_ID"] == ros_env["ROS_DOMAIN_ID"]
    assert report["graph_status"] == 0 and report["graph_starts"] == 1  # the nodes stopped cleanly, no restart
    (run,) = report["runs"]
    assert run["kind"] == "latency" and run["requested_hz"] == 5 and run["sent"] == 10
    assert 0 < run["answered"] <= run["sent"] and run["dropped"] == run["sent"] - run["answered"]
    assert run["latency_ms"]["n"] == run["answered"] and run["latency_ms"]["p50"] > 0
    perception, tracking = (run["node_diagnostics"][k] for k in ("perception", "tracking"))
    assert perception["device"] == "cpu" and perception["depth_model"] == "none"
    assert perception["sets_processed"] >= run["answered"] and tracking["sets_processed"] >= run["answered"]
    assert isinstance(run["node_diagnostics"]["perception_delta"]["images_missed"], int)  # counted, not "unknown"
    assert report["summary"]["peak_bound"] == "not searched" and report["summary"]["latency_rate_hz"] == 5
    assert "latency at 5 Hz" in text


@requires_ros
def test_a_discovery_stall_starts_the_graph_again(graph_module, graph_ros, monkeypatch, tmp_path):
    """A stall while the graph comes up starts it again (as the evaluation does) and the report counts the starts;
    ``--startup-attempts`` stalls in a row end the benchmark with an error that says so."""
    from depthtracker.ros.runtime import DiscoveryStall

    for k in ("ROS_DOMAIN_ID", "ROS_LOG_DIR", "FASTDDS_BUILTIN_TRANSPORTS", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
        monkeypatch.setenv(k, "")  # run_ros sets them for its own rclpy; restored after the test
    args = graph_module.parse_args(["--path", "ros", *SMALL, "--loop-sets", "1", "--startup-attempts", "3"])
    sets, cameras = graph_module.render_sets(1, 64, 48, 1, 0)
    calls = []

    def once(*a):
        calls.append(a)
        if len(calls) < 3:
            raise DiscoveryStall("this process did not see the perception node")
        return {"summary": {}}

    monkeypatch.setattr(graph_ros, "_run_once", once)
    report = graph_ros.run_ros(args, sets, cameras, tmp_path)
    assert report["graph_starts"] == 3 and len(calls) == 3
    log = (tmp_path / "graph.log").read_text()
    assert "starting the graph again (2 of 3)" in log and "starting the graph again (3 of 3)" in log
    calls.clear()
    args.startup_attempts = 2
    with pytest.raises(TimeoutError, match="did not see the perception node .*started 2 times"):
        graph_ros.run_ros(args, sets, cameras, tmp_path)


def test_a_value_that_rounds_to_its_target_shows_which_side_it_falls_on(graph_module):
    t = {"what": "peak camera-frames/s", "op": ">=", "target": 15, "verdict": "MISS", "notes": ["n"]}
    assert graph_module.target_line({**t, "value": 14.99956}) == \
        "target peak camera-frames/s: 14.9996 (target >= 15) MISS  [n]"
    assert graph_module.target_line({**t, "value": 22.4984, "verdict": "PASS"}).startswith(
        "target peak camera-frames/s: 22.50 (target >= 15) PASS")
    assert graph_module.target_line({**t, "value": None}).startswith("target peak camera-frames/s: - (")
