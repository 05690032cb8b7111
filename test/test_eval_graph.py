"""Evaluation through the running ROS graph agrees with the in-process evaluation of the same computation.

A 2-camera synthetic bag is played (slowly, so no set is dropped) into the perception and tracking nodes; their
outputs are scored with the same function as the in-process run. The DepthTrack weights are freshly initialised
(seeded): this tests that the graph computes what the core computes, not the model's accuracy.
"""

import json
import math

import pytest
from depthtracker.data.synth import SynthConfig
from helpers import requires_ros

WORLD = SynthConfig(cameras=2, width=160, height=120, fps=5.0, seconds=2.0, seed=5)


def test_plan_and_scoring_in_process(make_synth_bag, depth_checkpoint):
    from depthtracker.eval.replay import plan_target, run_in_process, score_outputs
    from depthtracker.perception import PerceptionConfig, PerceptionPipeline

    bag = make_synth_bag(WORLD)
    plan = plan_target(bag)
    assert plan is not None and len(plan.stamps) == len(plan.boxes) >= 5
    pipe = PerceptionPipeline.from_config(PerceptionConfig(depth_checkpoint=str(depth_checkpoint), device="cpu"))
    out = run_in_process(bag, pipe, plan)
    rep = score_outputs(bag, out, plan)
    assert rep["coverage"] == {"sets": 10, "sets_answered": 10, "images": 20, "images_with_detections": 20,
                               "images_with_depth": 20}
    assert rep["depth"]["images"] == 20 and rep["depth"]["abs_rel"] > 0
    assert 0 < rep["det"]["map50"] <= 1 and set(rep["mot"]["per_camera"]) == {"cam0", "cam1"}
    assert rep["sot"]["frames"] == len(plan.stamps) and 0 <= rep["sot"]["success_auc"] <= 1
    # Outputs scored against themselves as ground truth would be perfect: feed the ground truth as the output.
    from depthtracker.data.bags import BagReader

    with BagReader(bag) as r:
        for s in r.samples():
            for f, d in zip(s.frames, s.depths):
                out.depths[(f.stamp_ns, f.camera_id)] = d.depth
    for stamp, box in zip(plan.stamps, plan.boxes):
        out.target[stamp] = box
    perfect = score_outputs(bag, out, plan)
    assert perfect["depth"]["abs_rel"] == 0 and perfect["depth"]["delta1"] == 1
    assert perfect["sot"]["success_auc"] > 0.95 and perfect["sot"]["mean_iou"] == 1


def test_missing_outputs_count_as_misses(make_synth_bag):
    from depthtracker.eval.replay import GraphOutputs, plan_target, score_outputs

    bag = make_synth_bag(WORLD)
    rep = score_outputs(bag, GraphOutputs(), plan_target(bag))
    assert rep["coverage"]["sets_answered"] == 0 and rep["det"]["map50"] == 0
    assert rep["mot"]["mean"]["MOTA"] <= 0 and math.isnan(rep["depth"]["abs_rel"])


@requires_ros
@pytest.mark.ros
def test_graph_agrees_with_in_process(make_synth_bag, depth_checkpoint, ros_env, tmp_path, monkeypatch):
    from depthtracker.ros.eval_graph import GraphEvalConfig, evaluate_graph

    for k, v in ros_env.items():
        monkeypatch.setenv(k, v)  # this process's own node (player, target request, collector) joins the graph
    bag = make_synth_bag(WORLD)
    lines = []
    cfg = GraphEvalConfig(rate=0.5, device="cpu", set_params=(f"perception:depth_checkpoint={depth_checkpoint}",))
    report = evaluate_graph(bag, tmp_path / "out", cfg, compare=True, log=lines.append, env=ros_env)
    log = "\n".join(lines)
    assert report["coverage"]["sets_answered"] == report["coverage"]["sets"] == 10, f"{report['path']}\n{log[-4000:]}"
    assert report["coverage"]["images_with_depth"] == 20
    assert report["path"]["path"] == "ros-graph" and report["in_process"]["path"]["path"] == "in-process"
    diff = report["difference"]
    assert abs(diff["depth.abs_rel"]) < 1e-4 and abs(diff["depth.delta1"]) < 1e-4, diff
    for key in ("det.map50", "det.map50_95", "mot.HOTA", "mot.MOTA", "mot.IDF1", "sot.success_auc"):
        assert abs(diff[key]) < 0.02, (key, diff, log[-3000:])
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["sot"]["frames"] == report["sot"]["frames"] and (tmp_path / "out" / "report.md").is_file()
    # every set answered, and the nodes' final counters say none was lost on the way
    losses = report["path"]["losses"]
    assert losses["perception"]["sets_processed"] == "10" and losses["tracking"]["sets_processed"] == "10", losses
    assert losses["perception"]["images_missed"] == losses["tracking"]["detections_missed"] == "0", losses
    assert "Losses inside the graph" in (tmp_path / "out" / "report.md").read_text()
    assert "target/set: camera" in log and "graph stopped (status 0)" in log
    # the perception node reported the player's camera publishers matched before the first image went out
    assert "no perception node reported" not in log and "play: played the whole bag" in log, log[-3000:]


@requires_ros
@pytest.mark.ros
def test_demo_through_the_graph(make_synth_bag, depth_checkpoint, ros_env, tmp_path, monkeypatch):
    from depthtracker.demo import run_demo

    # As under `make demo`: no transport or discovery settings in the environment; the launcher gives the nodes
    # the large-data transport, and this process's own node must follow it or never discover them.
    env = {k: v for k, v in ros_env.items() if k not in ("FASTDDS_BUILTIN_TRANSPORTS", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    for k in ("FASTDDS_BUILTIN_TRANSPORTS", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    res = run_demo(tmp_path / "demo", config=WORLD, log=lambda s: None, path="graph", rate=0.5,
                   depth_checkpoint=str(depth_checkpoint), device="cpu", env=env)
    report = json.loads(res.report.read_text())
    assert report["path"]["path"] == "ros-graph" and report["coverage"]["sets_answered"] == 10
    assert report["sot"]["answered"] == report["sot"]["frames"] - 1 and res.annotated.is_dir()


def test_without_the_tracking_model_no_target_is_scored(make_synth_bag):
    from depthtracker.eval.replay import plan_target, run_in_process, score_outputs
    from depthtracker.perception import PerceptionConfig, PerceptionPipeline

    bag = make_synth_bag(WORLD)
    plan = plan_target(bag)
    pipe = PerceptionPipeline.from_config(PerceptionConfig(depth_checkpoint="none", device="cpu"))
    out = run_in_process(bag, pipe, plan)
    assert out.target == {} and not out.depths and out.detections
    rep = score_outputs(bag, out, None)
    assert "skipped" in rep["sot"] and "skipped" in rep["depth"] and rep["det"]["map50"] > 0


@requires_ros
def test_target_request_is_sent_until_both_nodes_hold_it():
    """A subscriber that matched the request's publisher late never gets a request sent once: the evaluation sends
    it again until /diagnostics shows both nodes holding it, and names the node that never does."""
    from depthtracker.ros.eval_graph import _send_target
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    from depthtracker_msgs.msg import TargetRequest

    class Graph:  # a node, its executor and the request's publisher; the tracking node misses the first `lost` sends
        def __init__(self, lost, tracking_reports=True):
            self.lost, self.tracking_reports = lost, tracking_reports
            self.received, self.sent, self.callbacks = 0, 0, []

        def create_subscription(self, kind, topic, cb, qos):
            assert kind is DiagnosticArray and topic == "/diagnostics"
            self.callbacks.append(cb)
            return cb

        def destroy_subscription(self, sub):
            self.callbacks.remove(sub)

        def publish(self, msg):
            self.sent += 1
            self.received += self.sent > self.lost

        def spin_once(self, timeout_sec):
            def status(name, key, value):
                return DiagnosticStatus(name=name, values=[KeyValue(key=key, value=value)])

            held = "held" if self.received and self.tracking_reports else "none"
            msg = DiagnosticArray(status=[status("/perception: perception", "target_camera", "1"),
                                          status("/tracking: tracking", "target", held)])
            for cb in list(self.callbacks):
                cb(msg)

    req = TargetRequest(camera_id=1, box=[1.0, 2.0, 30.0, 40.0])
    g = Graph(lost=1)
    assert _send_target(g, g, g, req, timeout_s=5.0, status=[]) == 2 and g.received == 1 and not g.callbacks
    g = Graph(lost=0)
    assert _send_target(g, g, g, req, timeout_s=5.0, status=[]) == 1
    g = Graph(lost=0, tracking_reports=False)
    with pytest.raises(TimeoutError, match="by the tracking node within 1.5 s"):
        _send_target(g, g, g, req, timeout_s=1.5, status=[])
    assert g.sent == 2 and not g.callbacks
    with pytest.raises(RuntimeError, match="graph stopped"):
        _send_target(Graph(lost=0), g, g, req, timeout_s=1.5, status=[1])


@requires_ros
@pytest.mark.ros
def test_a_node_this_process_never_sees_restarts_the_graph(make_synth_bag, ros_env, monkeypatch):
    """A discovery stall (a node up but never seen by this process's node) restarts the graph, not a 120 s wait:
    here the nodes run on another ROS domain than this process, so every start stalls, and the error names a node."""
    from depthtracker.ros.eval_graph import GraphEvalConfig, collect_graph_outputs

    for k, v in ros_env.items():
        monkeypatch.setenv(k, v)
    other = {**ros_env, "ROS_DOMAIN_ID": str((int(ros_env["ROS_DOMAIN_ID"]) + 100) % 200 + 1)}
    lines = []
    cfg = GraphEvalConfig(device="cpu", discovery_timeout_s=4.0, startup_attempts=2,
                          set_params=("perception:depth_checkpoint=none", "perception:detector_checkpoint=none"))
    stall = r"did not see the (perception|tracking)( and tracking)? node on the ROS graph within 4 s .*started 2 times"
    with pytest.raises(TimeoutError, match=stall):
        collect_graph_outputs(make_synth_bag(WORLD), None, cfg, log=lines.append, env=other)
    log = "\n".join(lines)
    assert log.count("[launch] started perception") == 2 and "starting the graph again (2 of 2)" in log, log


def test_a_discovery_stall_is_retried_then_the_outputs_come_back(make_synth_bag, monkeypatch):
    from depthtracker.eval.replay import GraphOutputs
    from depthtracker.ros import eval_graph

    calls, lines, outputs = [], [], GraphOutputs()

    def once(*args):
        calls.append(args)
        if len(calls) < 3:
            raise eval_graph.DiscoveryStall("this process did not see the perception node")
        return outputs

    monkeypatch.setattr(eval_graph, "_collect_once", once)
    cfg = eval_graph.GraphEvalConfig(startup_attempts=3)
    assert eval_graph.collect_graph_outputs(make_synth_bag(WORLD), None, cfg, log=lines.append) is outputs
    assert len(calls) == 3 and [line.endswith(f"({k} of 3)") for k, line in zip((2, 3), lines)] == [True, True]
    with pytest.raises(ValueError, match="startup_attempts"):
        eval_graph.GraphEvalConfig(startup_attempts=0)


def test_the_bag_waits_until_the_tracking_node_hears_the_perception_node():
    """Both nodes seen by the evaluation is not both nodes seeing each other: the bag is played only once the
    tracking node reports a matched detections publisher; one that never does is a stall (the graph restarts)."""
    import threading

    from depthtracker.ros import eval_graph

    class Collector:
        lock = threading.Lock()
        diagnostics = {"perception": (1.0, {"camera_publishers": "0"})}

    class Executor:  # each spin delivers the next /diagnostics report of the tracking node
        def __init__(self, reports):
            self.reports, self.spins = list(reports), 0

        def spin_once(self, timeout_sec):
            self.spins += 1
            if self.reports:
                Collector.diagnostics["tracking"] = (float(self.spins), {"detections_publishers": self.reports.pop(0)})

    ex = Executor(["0", "0", "1"])
    eval_graph._wait_tracking_hears_perception(Collector(), ex, 5.0, [])
    assert ex.spins == 3
    Collector.diagnostics.pop("tracking")
    with pytest.raises(eval_graph.DiscoveryStall, match=r"tracking node did not hear .* 0\.2 s .*: 0\)"):
        eval_graph._wait_tracking_hears_perception(Collector(), Executor(["0"]), 0.2, [])
    with pytest.raises(RuntimeError, match="graph stopped"):
        eval_graph._wait_tracking_hears_perception(Collector(), Executor([]), 5.0, [1])
