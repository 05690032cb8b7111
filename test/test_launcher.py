"""``depthtracker launch``: the graph's command lines from graph.yaml (pure), the supervisor on plain processes
(respawn, configuration errors, crash loops, ordered shutdown), and the real graph on synthetic cameras."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from depthtracker.cli import main
from depthtracker.configio import load_config
from depthtracker.data.synth import SynthConfig
from depthtracker.ros import launcher
from depthtracker.ros.launch_plan import (
    PLAYED_LINE,
    STAGE_NODES,
    STAGE_RECORD,
    STAGE_SOURCES,
    Child,
    GraphSpec,
    LaunchPlan,
    load_graph,
    make_plan,
)
from depthtracker.ros.launcher import run_children, run_graph
from helpers import requires_ros

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
CLI = [sys.executable, "-m", "depthtracker.cli"]


def by_name(children: list[Child]) -> dict[str, Child]:
    return {c.name: c for c in children}


def params(argv: tuple[str, ...]) -> list[str]:
    """The ``-p`` assignments of a command line, in order."""
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-p"]


def write_graph(path: Path, **overrides) -> Path:
    """A graph YAML: config/graph.yaml with the config paths made absolute and ``overrides`` applied."""
    data = yaml.safe_load((CONFIG / "graph.yaml").read_text())
    data.update({k: str(CONFIG / data[k]) for k in ("params_file", "tracking_params", "cameras_config")})
    data.update(overrides)
    path.write_text(yaml.safe_dump(data))
    return path


# -- the plan: pure ------------------------------------------------------------------------------------------------
def test_default_config_commands():
    plan = make_plan()
    assert plan.graph == load_graph(CONFIG / "graph.yaml") == GraphSpec()  # graph.yaml holds the defaults
    kids = plan.children(Path("/run"))
    assert [c.name for c in kids] == ["perception", "tracking", "ingest"]  # consumers first, the source last
    n = load_config(SynthConfig, name="synth").cameras  # cameras.yaml: [synth] with the default synth.yaml
    k = by_name(kids)
    assert k["ingest"].argv == (sys.executable, "-m", "depthtracker.ros.ingest", "--ros-args", "-r", "__node:=ingest",
                                "--params-file", str(CONFIG / "cameras.yaml"), "-p", "use_sim_time:=false")
    assert k["perception"].argv[:8] == (sys.executable, "-m", "depthtracker.ros.perception_node", "--ros-args", "-r",
                                        "__node:=perception", "--params-file", str(CONFIG / "perception.yaml"))
    assert params(k["perception"].argv) == ["use_sim_time:=false", "device:=auto", f"cameras:={n}", "autostart:=true"]
    assert k["tracking"].argv[2] == "depthtracker.ros.tracking_node"
    assert str(CONFIG / "tracking.yaml") in k["tracking"].argv
    assert [(c.stage, c.respawn, c.files) for c in kids] == [(STAGE_NODES, True, ()), (STAGE_NODES, True, ()),
                                                             (STAGE_SOURCES, True, ())]
    assert not any("__ns:=" in a for c in kids for a in c.argv)
    assert all(c.stack_dump for c in kids)  # our nodes print their stacks on SIGUSR1 (ros.runtime.run_node)
    assert all(c.heartbeat for c in kids)  # ... and write the watchdog's heartbeat


def test_camera_synth_and_live_specs():
    k = by_name(make_plan(cameras=["synth"]).children())
    assert params(k["ingest"].argv)[-1] == "cameras:=['synth']"
    k = by_name(make_plan(cameras=["video:x.mp4", "folder:y"]).children())
    assert params(k["ingest"].argv)[-1] == "cameras:=['video:x.mp4', 'folder:y']"
    assert "cameras:=2" in params(k["perception"].argv)
    k = by_name(make_plan(cameras=["folder:it's here"]).children())  # YAML single-quote escaping
    assert yaml.safe_load(params(k["ingest"].argv)[-1].partition(":=")[2]) == ["folder:it's here"]
    with pytest.raises(ValueError, match="stands alone"):
        make_plan(cameras=["synth", "video:x.mp4"])
    with pytest.raises(ValueError, match="kind must be one of"):
        make_plan(cameras=["webcam:0"])


def test_synth_camera_count_follows_synth_config(tmp_path):
    synth = tmp_path / "synth.yaml"
    synth.write_text("synth:\n  ros__parameters:\n    cameras: 3\n")
    plan = make_plan(set_params=[f"ingest:synth_config={synth}"])
    assert "cameras:=3" in params(by_name(plan.children())["perception"].argv)
    assert params(by_name(plan.children())["ingest"].argv)[-1] == f"synth_config:={synth}"
    plan = make_plan(set_params=["ingest:cameras=['folder:a', 'folder:b', 'folder:c', 'folder:d', 'folder:e']"])
    assert "cameras:=5" in params(by_name(plan.children())["perception"].argv)


@pytest.fixture(scope="module")
def tiny_bag(make_synth_bag):
    return make_synth_bag(SynthConfig(cameras=3, width=32, height=24, fps=10.0, seconds=1.0, num_objects=1))


def test_bag_replaces_ingest(tiny_bag, tmp_path):
    k = by_name(make_plan(cameras=[f"bag:{tiny_bag}"]).children())
    assert set(k) == {"perception", "tracking", "play"}
    played = ("--topics", "/cam0/camera_info", "/cam0/image_raw", "/cam1/camera_info", "/cam1/image_raw",
              "/cam2/camera_info", "/cam2/image_raw", "/tf_static")
    # the player waits (up to 40 s) for the perception node, and the recorder when there is one, on every camera topic,
    # and for the perception node to report it heard the player (its side of the match)
    assert k["play"].argv == (*CLI, "play", str(tiny_bag), "--delay", "2", *played, "--wait-subscribers", "40",
                              "--subscribers", "1", "--wait-perception")
    k = by_name(make_plan(cameras=[f"bag:{tiny_bag}"], record=tmp_path / "rec").children())
    assert k["play"].argv[-3:] == ("--subscribers", "2", "--wait-perception")
    no_perception = write_graph(tmp_path / "np.yaml", enable_perception=False)
    assert by_name(make_plan(no_perception, cameras=[f"bag:{tiny_bag}"]).children())["play"].argv[-8:] == played
    assert (k["play"].stage, k["play"].respawn) == (STAGE_SOURCES, False)
    assert "cameras:=3" in params(k["perception"].argv)  # the bag's cameras
    sim = write_graph(tmp_path / "g.yaml", use_sim_time=True)
    k = by_name(make_plan(sim, cameras=[f"bag:{tiny_bag}"]).children())
    assert k["play"].argv[-1] == "--clock" and "use_sim_time:=true" in params(k["tracking"].argv)
    with pytest.raises(ValueError, match="cannot be mixed"):
        make_plan(cameras=[f"bag:{tiny_bag}", "video:x.mp4"])
    with pytest.raises(ValueError, match="namespace"):
        make_plan(cameras=[f"bag:{tiny_bag}"], namespace="rig")
    with pytest.raises(ValueError, match="ingest node does not run"):
        make_plan(cameras=[f"bag:{tiny_bag}"], set_params=["ingest:fps=3.0"])
    with pytest.raises(ValueError, match="does not exist"):
        make_plan(cameras=[f"bag:{tmp_path / 'nope'}"]).children()


def test_bag_read_once_per_plan(tiny_bag, tmp_path, monkeypatch):
    """The plan opens ``--camera bag:PATH`` once for its camera ids, played topics and rig file, however many ask."""
    import depthtracker.data.bags as bags

    opened = []

    class Counting(bags.BagReader):
        def __init__(self, path, *args, **kwargs):
            opened.append(path)
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(bags, "BagReader", Counting)
    plan = make_plan(cameras=[f"bag:{tiny_bag}"], record=tmp_path / "rec")
    k = by_name(plan.children(tmp_path))
    assert plan.camera_ids() == [0, 1, 2] and "/tf_static" in plan.played_topics()
    assert dict(k["perception"].files)[tmp_path / "rig.yaml"].startswith("# T_world_cam")
    assert len(opened) == 1


def test_record_topics_and_namespace(tmp_path):
    plan = make_plan(cameras=["video:a.mp4", "video:b.mp4"], namespace="/rig/", record=tmp_path / "bag")
    assert plan.graph.namespace == "rig"
    kids = plan.children(tmp_path / "run")
    rec = kids[0]
    assert (rec.name, rec.stage, rec.respawn) == ("record", STAGE_RECORD, False)  # started first, stopped last
    assert rec.argv[:6] == (*CLI, "record", "--out", str(tmp_path / "bag"))
    topics = list(rec.argv[rec.argv.index("--topics") + 1: rec.argv.index("--wait")])
    assert topics == ["/rig/cam0/image_raw", "/rig/cam0/camera_info", "/rig/cam1/image_raw", "/rig/cam1/camera_info",
                      "/rig/depth_heatmap", "/rig/detections", "/rig/target/measurement", "/rig/tracks"]
    assert rec.argv[-2:] == ("--wait", "30")
    for c in kids[1:]:
        assert c.argv[6:9] == ("-r", "__ns:=/rig", "--params-file")
    # Only the outputs of the enabled nodes: a recorder waiting for a topic nobody publishes would fail.
    plan = make_plan(write_graph(tmp_path / "g.yaml", enable_perception=False), record=tmp_path / "bag")
    kids = plan.children()
    rec = kids[0]
    assert "/tracks" in rec.argv and "/detections" not in rec.argv and "/cam0/image_raw" in rec.argv
    assert "perception" not in by_name(kids)
    (tmp_path / "bag").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        plan.children()


def test_namespaced_params_files_are_rekeyed(tmp_path):
    # A params file keyed by the bare node name applies only in the root namespace (rcl): a re-keyed copy is passed.
    bare = tmp_path / "tracking_bare.yaml"
    bare.write_text(yaml.safe_dump({"tracking": {"ros__parameters": {"high_score": 0.6}}}))
    plan = make_plan(write_graph(tmp_path / "g.yaml", tracking_params=str(bare)), namespace="rig")
    kids = by_name(plan.children(tmp_path))
    ((path, text),) = kids["tracking"].files
    assert path == tmp_path / "tracking.params.yaml" and str(path) in kids["tracking"].argv
    assert yaml.safe_load(text) == {"/**/tracking": {"ros__parameters": {"high_score": 0.6}}}
    # The shipped files are keyed /**/NODE: they apply in any namespace and are passed as they are.
    kids = by_name(make_plan(namespace="rig").children(tmp_path))
    for name, file in (("ingest", "cameras.yaml"), ("tracking", "tracking.yaml"), ("perception", "perception.yaml")):
        assert kids[name].files == () and str(CONFIG / file) in kids[name].argv


def test_set_param(tmp_path):
    k = by_name(make_plan(set_params=["perception:publish_color=true", "tracking:high_score=0.6"]).children())
    assert params(k["perception"].argv)[-1] == "publish_color:=true"  # after --params-file: it wins
    assert params(k["tracking"].argv)[-1] == "high_score:=0.6"
    for bad in ("perception:publish_color", "camera:x=1", "perception=1", "tracking:=3"):
        with pytest.raises(ValueError, match="NODE:NAME=VALUE"):
            make_plan(set_params=[bad])
    with pytest.raises(ValueError, match="not enabled"):
        make_plan(write_graph(tmp_path / "g.yaml", enable_tracking=False), set_params=["tracking:high_score=0.6"])


def test_graph_yaml_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bogus'\].*") as err:
        load_graph(write_graph(tmp_path / "g.yaml", bogus=1))
    assert str(tmp_path / "g.yaml") in str(err.value)
    with pytest.raises(ValueError, match="cannot read config file .*nope.yaml"):
        make_plan(tmp_path / "nope.yaml")
    for key, value, match in (("device", "gpu", "device"), ("namespace", "1rig", "namespace"),
                              ("respawn", "yes", "respawn"), ("respawn_delay", -1, "respawn_delay")):
        with pytest.raises(ValueError, match=match):
            load_graph(write_graph(tmp_path / "g.yaml", **{key: value}))
    # Relative paths are to the YAML's folder; a missing params file is named.
    (tmp_path / "sub").mkdir()
    g = write_graph(tmp_path / "sub" / "g.yaml", tracking_params="mine.yaml")
    assert load_graph(g).tracking_params == tmp_path / "sub" / "mine.yaml"
    with pytest.raises(ValueError, match=r"params file .*mine.yaml of the tracking node does not exist"):
        make_plan(g).children()


def test_cli_dry_run(capsys):
    assert main(["launch", "--dry-run", "--camera", "video:x.mp4", "--camera", "folder:y", "--device", "cpu",
                 "--no-respawn"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == {"perception", "tracking", "ingest"}
    assert "device:=cpu" in lines["perception"] and "cameras:=2" in lines["perception"]
    assert "cameras:=['video:x.mp4', 'folder:y']" in shlex.split(lines["ingest"])  # shell-quoted
    assert main(["launch", "--dry-run", "--camera", "bogus"]) == 2
    assert "launch: error: camera source 'bogus'" in capsys.readouterr().err
    assert main(["launch", "--stop-when-played"]) == 2


def test_launcher_imports_no_ros():
    code = ("import sys, depthtracker.cli\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the supervisor on plain processes: fast, no ROS ---------------------------------------------------------------
def py(name: str, code: str, stage: int = STAGE_NODES, respawn: bool = True) -> Child:
    return Child(name, (sys.executable, "-c", code), stage, respawn)


class Log(list):
    def __call__(self, line: str) -> None:
        self.append(line)

    def text(self) -> str:
        return "\n".join(self)


SLEEPER = "import time\nprint('up', flush=True)\nwhile True: time.sleep(0.05)"


def test_respawn_logs_and_restarts(tmp_path):
    flag = tmp_path / "died"
    code = f"import os, sys, time\nif not os.path.exists({str(flag)!r}):\n    open({str(flag)!r}, 'w').close()\n" \
           "    sys.exit(7)\nprint('second life', flush=True)\nwhile True: time.sleep(0.05)"
    log, pids = Log(), []
    status = run_children([py("node", code)], respawn_delay=0.2, duration_s=2.0, log=log,
                          on_start=lambda n, p: pids.append(p))
    assert status == 0, log.text()
    assert "[launch] node exited with status 7; respawning in 0.2 s (respawn 1)" in log
    assert "[node] second life" in log and len(set(pids)) == 2


def test_configuration_error_is_not_respawned():
    log = Log()
    t = time.monotonic()
    status = run_children([py("node", "import sys; print('bad parameter'); sys.exit(2)"), py("other", SLEEPER)],
                          respawn_delay=0.1, duration_s=20.0, log=log)
    assert status == 2 and time.monotonic() - t < 5.0
    assert "[node] bad parameter" in log and not any("respawning in" in line for line in log)
    assert any(line.startswith("[launch] ERROR: node exited with status 2: a configuration error") for line in log)


def test_crash_loop_stops_the_graph():
    log = Log()
    status = run_children([py("node", "raise SystemExit(1)")], respawn_delay=0.0, duration_s=20.0, log=log)
    assert status == 1
    assert sum("respawning in" in line for line in log) == launcher.MAX_QUICK_EXITS - 1
    assert "times in a row" in log[-2]


def test_no_respawn_stops_the_graph():
    log = Log()
    assert run_children([py("node", "raise SystemExit(3)", respawn=False), py("other", SLEEPER)],
                        duration_s=20.0, log=log) == 1
    assert "[launch] ERROR: node exited with status 3; shutting the graph down" in log


def test_ordered_shutdown_and_escalation(tmp_path, monkeypatch):
    """Sources stop first, the recorder last; a child ignoring SIGINT gets SIGTERM after STOP_TIMEOUT_S."""
    monkeypatch.setattr(launcher, "STOP_TIMEOUT_S", 0.5)
    order = tmp_path / "order"

    def child(name: str, stage: int, ignore_int: bool = False) -> Child:
        on_int = "signal.SIG_IGN" if ignore_int else "lambda *_: sys.exit(0)"
        return py(name, f"import signal, sys, time\nsignal.signal(signal.SIGINT, {on_int})\n"
                  f"signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
                  f"import atexit; atexit.register(lambda: open({str(order)!r}, 'a').write({name!r} + ' '))\n"
                  "print('up', flush=True)\nwhile True: time.sleep(0.02)", stage)

    kids = [child("record", STAGE_RECORD), child("tracking", STAGE_NODES, ignore_int=True),
            child("ingest", STAGE_SOURCES)]
    log, stop = Log(), threading.Event()
    runner = threading.Thread(target=lambda: log.append(run_children(kids, log=log, stop=stop)))
    runner.start()
    deadline = time.monotonic() + 10
    while sum(line.endswith("] up") for line in log if isinstance(line, str)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    runner.join(30)
    assert log[-1] == 0, log
    assert order.read_text().split() == ["ingest", "tracking", "record"]
    assert "[launch] tracking still running: sending SIGTERM" in log


def test_a_child_that_does_not_stop_shows_its_stacks_before_sigterm(monkeypatch):
    """A child that ignores SIGINT prints its threads' stacks into the log before SIGTERM ends it; a child that did
    not ask for stack dumps gets no SIGUSR1 (its default action would end it with status -10, a failed stop)."""
    monkeypatch.setattr(launcher, "STOP_TIMEOUT_S", 0.5)
    code = ("import signal, time\nfrom depthtracker.ros.launcher import enable_stack_dumps\nenable_stack_dumps()\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "def stuck_in_teardown():\n    print('up', flush=True)\n    while True: time.sleep(0.02)\n"
            "stuck_in_teardown()")
    kids = [dataclasses.replace(py("node", code), stack_dump=True),
            py("other", code.replace("enable_stack_dumps()", "pass"))]
    log, stop = Log(), threading.Event()
    runner = threading.Thread(target=lambda: log.append(run_children(kids, log=log, stop=stop)))
    runner.start()
    deadline = time.monotonic() + 10
    while sum(str(line).endswith("] up") for line in log) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    runner.join(30)
    assert log[-1] == 0, log
    lines = [str(line) for line in log]
    dump = lines.index("[launch] node: the stacks of its threads follow (SIGUSR1)")
    assert any(line.startswith("[node]") and "in stuck_in_teardown" in line for line in lines[dump:]), lines
    assert not any(line.startswith("[launch] other: the stacks") for line in lines), lines
    assert dump > lines.index("[launch] node, other still running: sending SIGTERM")  # the stacks, then SIGTERM


def test_watchdog_kills_and_respawns_a_child_whose_heartbeat_stops(tmp_path):
    """A child that wrote heartbeats and stopped while its process runs (a stuck executor) is killed after the
    watchdog, its stacks dumped first, and respawned like a crash; a child that never wrote one (still starting) and
    one that keeps writing are left alone."""
    flag = tmp_path / "stuck-once"
    beat = ("import os, time\n"
            "def beat():\n    open(os.environ['DEPTHTRACKER_HEARTBEAT'], 'w').write(repr(time.monotonic()))\n")
    stuck = (beat + "from depthtracker.ros.launcher import enable_stack_dumps\nenable_stack_dumps()\n"
             f"first = not os.path.exists({str(flag)!r})\nopen({str(flag)!r}, 'w').close()\n"
             "print('first life' if first else 'second life', flush=True)\n"
             "def stuck_executor():\n    while True: time.sleep(0.05)\n"
             "for _ in range(5):\n    beat(); time.sleep(0.1)\n"
             "if first: stuck_executor()\n"
             "while True:\n    beat(); time.sleep(0.2)\n")
    kids = [dataclasses.replace(py("node", stuck), stack_dump=True, heartbeat=True),
            dataclasses.replace(py("starting", SLEEPER), heartbeat=True),  # never beats: not armed
            dataclasses.replace(py("healthy", beat + "while True:\n    beat(); time.sleep(0.2)\n"), heartbeat=True)]
    log, pids = Log(), []
    status = run_children(kids, respawn_delay=0.2, duration_s=7.0, log=log, watchdog_s=2.5,
                          on_start=lambda n, p: pids.append(n))
    lines = [str(line) for line in log]
    assert status == 0, lines
    killed = [line for line in lines if "no heartbeat for" in line]
    assert len(killed) == 1 and killed[0].startswith("[launch] node: no heartbeat for"), lines
    assert "[launch] node: the stacks of its threads follow (SIGUSR1)" in lines
    assert any(line.startswith("[node]") and "in stuck_executor" in line for line in lines), lines
    assert "[launch] node exited with status -9; respawning in 0.2 s (respawn 1)" in lines
    assert "[node] second life" in lines and pids.count("node") == 2
    assert pids.count("starting") == 1 and pids.count("healthy") == 1


def test_watchdog_bounds():
    for bad in (-1.0, 1.5, float("inf")):
        with pytest.raises(ValueError, match="watchdog"):
            run_children([py("node", SLEEPER)], duration_s=1.0, watchdog_s=bad)


def test_play_finishing_keeps_graph_or_stops_it(tmp_path):
    def kids(run: str) -> list[Child]:
        # play ends once tracking is up: a SIGINT that lands while an interpreter is still starting makes it exit
        # with status 1 (KeyboardInterrupt before the main module runs), a start-up race this test is not about
        up = str(tmp_path / f"tracking-up-{run}")
        return [py("play", f"import os, time\nwhile not os.path.exists({up!r}): time.sleep(0.02)\nprint('played')",
                   STAGE_SOURCES, respawn=False),
                py("tracking", f"import time\nopen({up!r}, 'w').close()\nprint('up', flush=True)\n"
                               "while True: time.sleep(0.05)")]

    log = Log()
    t = time.monotonic()
    assert run_children(kids("keep"), duration_s=2.0, log=log) == 0 and time.monotonic() - t > 1.9
    assert "[launch] play finished the bag; the graph keeps running until stopped" in log
    t = time.monotonic()
    assert run_children(kids("stop"), duration_s=20.0, stop_when_played=True, log=Log()) == 0
    assert time.monotonic() - t < 5.0


@pytest.mark.parametrize("stop_when_played", [True, False])
def test_player_blocked_after_its_bag_is_killed_and_counted(stop_when_played):
    """A player that printed PLAYED_LINE and then hangs (a blocked DDS teardown) is killed after its grace; the bag
    counts as played: --stop-when-played stops the graph, status 0; otherwise the graph runs on."""
    code = ("import time\nfrom depthtracker.ros.launcher import enable_stack_dumps\nenable_stack_dumps()\n"
            f"print({PLAYED_LINE + ': 8 messages'!r}, flush=True)\nwhile True: time.sleep(1)")
    hung = dataclasses.replace(py("play", code, STAGE_SOURCES, respawn=False), done_line=PLAYED_LINE,
                               exit_grace_s=0.5, stack_dump=True)
    log = Log()
    t = time.monotonic()
    status = run_children([hung, py("tracking", SLEEPER)], duration_s=20.0 if stop_when_played else 3.0,
                          stop_when_played=stop_when_played, log=log)
    assert status == 0, log
    assert any("play finished its work" in str(line) and "(a blocked teardown); killing it" in str(line)
               for line in log), log
    assert "[launch] play: the stacks of its threads follow (SIGUSR1)" in log  # where it blocked, then the kill
    assert any(str(line).startswith("[play]   File") for line in log), log
    if stop_when_played:
        assert "[launch] play finished the bag; shutting the graph down (--stop-when-played)" in log
        assert time.monotonic() - t < 10.0
    else:
        assert "[launch] play finished the bag; the graph keeps running until stopped" in log
        assert time.monotonic() - t > 2.9
    # without the line the same process is a player still playing: nothing kills it before the stop
    log = Log()
    playing = dataclasses.replace(hung, argv=(sys.executable, "-c", code.replace(PLAYED_LINE, "playing")))
    assert run_children([playing], duration_s=1.5, log=log) == 0
    assert not any("killing it" in str(line) for line in log), log


# -- the real graph: ingest + tracking on small synthetic cameras (the perception node is tested by its owner) -----
TINY = "synth:\n  ros__parameters:\n    cameras: 2\n    width: 160\n    height: 120\n    fps: 10.0\n" \
       "    num_objects: 2\n"


@pytest.fixture
def small_graph(tmp_path) -> tuple[Path, Path]:
    """A graph with ingest and tracking only, and a tiny synthetic world for the ingest node."""
    (tmp_path / "synth.yaml").write_text(TINY)
    return write_graph(tmp_path / "graph.yaml", enable_perception=False, respawn_delay=0.5), tmp_path / "synth.yaml"


def receive_times(bag: Path) -> dict[str, list[int]]:
    """Topic -> receive times of its messages, every recorded topic (rosbags: also reads namespaced topics)."""
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        out: dict[str, list[int]] = {c.topic: [] for c in reader.connections}
        for conn, t, _ in reader.messages():
            out.setdefault(conn.topic, []).append(t)
    return out


@requires_ros
@pytest.mark.ros
@pytest.mark.slow
def test_graph_records_synthetic_cameras(ros_env, small_graph, tmp_path):
    graph, synth = small_graph
    bag = tmp_path / "bag"
    res = subprocess.run([*CLI, "launch", "--config", str(graph), "--camera", "synth", "--set-param",
                          f"ingest:synth_config={synth}", "--for", "8", "--record", str(bag)],
                         env=ros_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-4000:]
    assert re.search(r"^\[ingest\] \[INFO\] .*2 cameras 160x120", res.stderr, re.M), res.stderr[-4000:]
    assert "[record] wrote" in res.stderr and "[launch] graph stopped (status 0)" in res.stderr
    from depthtracker.data.bags import BagReader

    with BagReader(bag) as reader:
        assert reader.camera_ids == [0, 1]
        assert [(c.width, c.height) for c in reader.cameras] == [(160, 120)] * 2
        assert reader.num_sets >= 10
        assert "/tracks" in reader.topics
        images = [m for _, _, m in reader.messages(["/cam1/image_raw"])]
    assert images[0].encoding == "rgb8" and images[0].data.std() > 0  # rendered content, not a blank frame


@requires_ros
@pytest.mark.ros
@pytest.mark.slow
def test_killed_node_is_respawned_and_recording_goes_on(ros_env, small_graph, tmp_path):
    graph, synth = small_graph
    plan = LaunchPlan(dataclasses.replace(load_graph(graph), namespace="rig"),
                      set_params=(f"ingest:synth_config={synth}",), record=tmp_path / "bag")
    log, stop, pids = Log(), threading.Event(), []
    result = []
    runner = threading.Thread(target=lambda: result.append(run_graph(
        plan, log=log, stop=stop, env=ros_env, on_start=lambda name, pid: pids.append((name, pid)))))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not any(line.startswith("[record] recording") for line in log) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        first = [p for n, p in pids if n == "ingest"]
        assert len(first) == 1, log.text()
        os.kill(first[0], signal.SIGKILL)
        killed_at = time.time_ns()
        while len([p for n, p in pids if n == "ingest"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(4.0)  # the new ingest starts and publishes again
    finally:
        stop.set()
        runner.join(60)
    assert result == [0], log.text()[-4000:]
    assert "[launch] ingest exited with status -9; respawning in 0.5 s (respawn 1)" in log
    second = [p for n, p in pids if n == "ingest"]
    assert len(second) == 2 and second[0] != second[1]
    times = receive_times(tmp_path / "bag")
    after = [t for t in times["/rig/cam0/image_raw"] if t > killed_at + 1_000_000_000]
    assert len(after) >= 5, (len(times["/rig/cam0/image_raw"]), log.text()[-3000:])


@requires_ros
@pytest.mark.ros
@pytest.mark.slow
def test_sigint_stops_cleanly_and_closes_the_bag(ros_env, small_graph, tmp_path):
    graph, synth = small_graph
    bag = tmp_path / "bag"
    proc = subprocess.Popen([*CLI, "launch", "--config", str(graph), "--set-param", f"ingest:synth_config={synth}",
                             "--record", str(bag)], env=ros_env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any(line.startswith("[record] recording") for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, "".join(lines)[-4000:]
    finally:
        proc.kill()
        reader.join(5)
        proc.stderr.close()
    text = "".join(lines)
    # The recorder stops last: its summary comes after the nodes' exits, and the bag is complete under its name.
    assert text.index("[record] wrote") > max(text.rfind("[ingest]"), text.rfind("[tracking]")), text[-3000:]
    assert (bag / "metadata.yaml").is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(receive_times(bag)["/cam0/image_raw"]) >= 5


@requires_ros
@pytest.mark.ros
def test_configuration_error_stops_the_graph(ros_env, small_graph):
    graph, synth = small_graph
    t = time.monotonic()
    res = subprocess.run([*CLI, "launch", "--config", str(graph), "--set-param", f"ingest:synth_config={synth}",
                          "--set-param", "tracking:high_score=7.0", "--for", "30"],
                         env=ros_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and time.monotonic() - t < 15.0, res.stderr[-3000:]
    assert "high_score" in res.stderr and "respawning in" not in res.stderr
    assert "[launch] ERROR: tracking exited with status 2: a configuration error" in res.stderr


@requires_ros
@pytest.mark.ros
@pytest.mark.slow
def test_bag_replay_through_the_graph(ros_env, tiny_bag, tmp_path):
    """--camera bag:PATH: the player replaces the ingest node; --stop-when-played ends the graph when it is done."""
    graph = write_graph(tmp_path / "graph.yaml", enable_perception=False)
    out = tmp_path / "replayed"
    res = subprocess.run([*CLI, "launch", "--config", str(graph), "--camera", f"bag:{tiny_bag}", "--stop-when-played",
                          "--record", str(out), "--for", "40"], env=ros_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "[launch] play finished the bag; shutting the graph down (--stop-when-played)" in res.stderr
    assert f"[play] {PLAYED_LINE}: " in res.stderr  # the launcher's cue that only teardown is left
    counts = receive_times(out)
    # the player waited for the recorder: it heard the bag from the start (best-effort camera topics: allow a loss)
    assert len(counts["/cam2/image_raw"]) >= 8 and "/tracks" in counts, res.stderr[-4000:]
    # replaying the recorded bag plays its camera inputs only, never the outputs recorded beside them
    assert make_plan(cameras=[f"bag:{out}"]).played_topics() == sorted(f"/cam{i}/{k}" for i in range(3)
                                                                       for k in ("camera_info", "image_raw"))


@requires_ros
@pytest.mark.ros
def test_cameras_yaml_is_a_params_file_for_the_ingest_node(tmp_path):
    """Every key of config/cameras.yaml is a parameter the real node declares, and it takes the file's values."""
    import rclpy
    from depthtracker.configio import load_yaml, ros_parameters
    from depthtracker.ros.ingest import IngestNode
    from rclpy.parameter import Parameter

    values = dict(ros_parameters(load_yaml(CONFIG / "cameras.yaml")))
    assert list(load_yaml(CONFIG / "cameras.yaml")) == ["/**/ingest"]
    values["synth_config"] = str(tmp_path / "synth.yaml")  # a tiny world: the node renders it on start
    (tmp_path / "synth.yaml").write_text(TINY)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = IngestNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        try:
            for key, value in values.items():
                assert node.has_parameter(key), f"cameras.yaml: {key} is not a parameter of the ingest node"
                assert node.get_parameter(key).value == value, key
        finally:
            node.destroy_node()
    finally:
        context.try_shutdown()
