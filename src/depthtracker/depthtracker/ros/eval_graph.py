"""``depthtracker eval graph``: play a bag through the running ROS graph and score what it publishes.

``evaluate_graph(bag, out_dir)``:

1. starts the perception and tracking nodes as processes (``ros.launcher.run_graph``; the params files of
   ``config/graph.yaml``; ``cameras`` and the rig's poses taken from the bag, ``device`` as asked);
2. waits until both nodes are up (their subscriptions matched; a node whose process ran ``discovery_timeout_s``
   without this process seeing it on the ROS graph, a Fast DDS discovery stall that waiting does not end, starts the
   graph again, up to ``startup_attempts`` starts; so does a tracking node that reports no publisher of
   ``detections`` matched that long after the target request), sends ``target/set`` for the target plan
   (``eval.replay.plan_target``: the longest visible run of one object), stamped with the run's first image, until
   both nodes report it on ``/diagnostics``, then plays the bag (``ros.play``) at ``rate``, camera topics only,
   once the perception node reports the player's camera publishers matched (``camera_publishers`` on
   ``/diagnostics``: the subscribers' side of the match, so the first images are not lost);
3. collects ``depth_heatmap``, ``detections`` and ``tracks`` in this process until the outputs of the last set
   came back (or ``drain_s`` passed), then each node's next ``/diagnostics`` report (``path.losses``: where sets
   went missing inside the graph, e.g. the perception node's ``dropped_sets`` and ``images_missed``, the tracking
   node's ``detections_missed``), stops the graph, and scores the outputs with ``eval.replay.score_outputs``: the
   function that scores the in-process run (``eval.replay.run_in_process``), so the two can be compared.

Writes ``OUT/report.json`` (``depth``, ``det``, ``mot``, ``sot``, ``coverage``, ``path``; with ``compare``, also
``in_process`` and ``difference``: the same keys from the in-process run) and ``OUT/report.md``. A set the graph
dropped (the perception node keeps only the newest set) counts as empty detections, no depth and the last target
box: play slower (``rate``) when ``coverage`` shows drops and the aim is accuracy rather than real time.

Tracks are keyed by the ``TrackArray`` stamp (the newest image of the set): exact for rigs that stamp every camera
of a set alike, as the synthetic world and hardware-triggered rigs do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from depthtracker.data.bags import BagReader
from depthtracker.data.images import image_to_array
from depthtracker.eval.replay import GraphOutputs, ReplayConfig, TargetPlan, plan_target, report_lines, score_outputs
from depthtracker.ros.conversions import detections_from_msgs, node_diagnostics, stamp_from_msg
from depthtracker.ros.runtime import DiscoveryStall, check_discovery, standalone_node, start_with_restarts
from depthtracker.types import TrackState

__all__ = ["GraphEvalConfig", "evaluate_graph", "collect_graph_outputs"]


@dataclasses.dataclass(frozen=True)
class GraphEvalConfig:
    """How ``evaluate_graph`` runs the graph."""

    rate: float = 1.0  # playback speed factor of the bag (lower = fewer dropped sets on a slow device), > 0
    device: str = "auto"  # perception device: auto | cpu | cuda | cuda:N
    graph_config: str = ""  # graph YAML (launch arguments); "" = config/graph.yaml
    startup_timeout_s: float = 120.0  # how long the nodes may take to come up (weights load), s
    discovery_timeout_s: float = 30.0  # a node's process running this long unseen by this process's node: restart, s
    startup_attempts: int = 3  # starts of the graph when a node stays unseen (a middleware discovery stall), >= 1
    drain_s: float = 10.0  # after the last message played, how long to wait for the last outputs, s
    play_delay_s: float = 0.5  # once every camera topic is matched, the player waits this long more, s
    set_params: tuple[str, ...] = ()  # NODE:NAME=VALUE overrides, as depthtracker launch --set-param
    target_ack_s: float = 30.0  # how long both nodes may take to report the target request on /diagnostics, s
    diagnostics_wait_s: float = 3.0  # after the drain, how long to wait for each node's final /diagnostics, s

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"GraphEvalConfig.rate must be a positive number, got {self.rate!r}")
        if self.startup_attempts < 1 or not self.discovery_timeout_s > 0:
            raise ValueError("GraphEvalConfig: startup_attempts must be >= 1 and discovery_timeout_s > 0, got "
                             f"{self.startup_attempts}, {self.discovery_timeout_s}")
        if self.startup_timeout_s <= 0 or self.drain_s < 0 or self.target_ack_s <= 0 or self.diagnostics_wait_s < 0:
            raise ValueError("GraphEvalConfig: startup_timeout_s and target_ack_s must be > 0, drain_s and "
                             f"diagnostics_wait_s >= 0, got {self.startup_timeout_s}, {self.target_ack_s}, "
                             f"{self.drain_s}, {self.diagnostics_wait_s}")


# the counters of the nodes' /diagnostics that say where a set went missing between the player and the outputs
LOSS_KEYS = {"perception": ("sets_processed", "dropped_sets", "images_missed", "sync_dropped",
                            "sets_without_camera_info", "bad_images", "failed_sets"),
             "tracking": ("sets_processed", "detections_missed")}


class _Collector:
    """Subscriptions to the graph's outputs, converted to ``GraphOutputs`` as they arrive (executor thread)."""

    def __init__(self, node: Any, camera_of_frame: dict[str, int]) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        from depthtracker.ros.qos import output_qos
        from depthtracker_msgs.msg import DetectionArray, TrackArray

        self.out = GraphOutputs()
        self.cams = camera_of_frame
        self.last_stamp = 0
        self.lock = threading.Lock()
        self.diagnostics: dict[str, tuple[float, dict[str, str]]] = {}  # node kind -> (received, newest values)
        qos = output_qos(depth=100)
        node.create_subscription(Image, "depth_heatmap", self._on_depth, qos)
        node.create_subscription(DetectionArray, "detections", self._on_detections, qos)
        node.create_subscription(TrackArray, "tracks", self._on_tracks, qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, output_qos(depth=50))

    def _on_diagnostics(self, msg: Any) -> None:
        now = time.monotonic()
        with self.lock:
            for kind, values in node_diagnostics(msg).items():
                self.diagnostics[kind] = (now, values)

    def losses(self, since: float) -> dict[str, dict[str, str]]:
        """Where sets were lost inside the graph, from each node's newest ``/diagnostics`` report received after
        ``since`` (monotonic); a node with none is left out."""
        with self.lock:
            return {kind: {k: values[k] for k in LOSS_KEYS[kind] if k in values}
                    for kind, (t, values) in self.diagnostics.items() if t > since and kind in LOSS_KEYS}

    def _on_depth(self, msg: Any) -> None:
        cam = self.cams.get(msg.header.frame_id)
        if cam is not None:
            with self.lock:
                self.out.depths[(stamp_from_msg(msg.header.stamp), cam)] = image_to_array(msg).copy()

    def _on_detections(self, msg: Any) -> None:
        by_cam: dict[int, list] = {}
        for d in msg.detections:
            by_cam.setdefault(int(d.camera_id), []).append(d)
        with self.lock:
            for h in msg.camera_headers:
                cam = self.cams.get(h.frame_id)
                if cam is None:
                    continue
                stamp = stamp_from_msg(h.stamp)
                self.out.detections[(stamp, cam)] = detections_from_msgs(by_cam.get(cam, []), cam, stamp)

    def _on_tracks(self, msg: Any) -> None:
        stamp = stamp_from_msg(msg.header.stamp)
        per_cam: dict[int, list] = {}
        with self.lock:
            for t in msg.tracks:
                if t.is_target:
                    self.out.target[stamp] = np.asarray(t.box, np.float32)
                elif t.state == int(TrackState.CONFIRMED):
                    per_cam.setdefault(int(t.camera_id), []).append((int(t.id), list(t.box), int(t.class_id)))
            for cam in set(self.cams.values()):
                rows = per_cam.get(cam, [])
                self.out.tracks[(stamp, cam)] = (np.array([r[0] for r in rows], np.int64),
                                                 np.array([r[1] for r in rows], np.float32).reshape(-1, 4),
                                                 np.array([r[2] for r in rows], np.int64))
            self.last_stamp = max(self.last_stamp, stamp)


def collect_graph_outputs(bag: str | os.PathLike[str], plan: TargetPlan | None, config: GraphEvalConfig,
                          log: Callable[[str], None] = print, env: dict[str, str] | None = None) -> GraphOutputs:
    """Steps 1-3 of the module docstring: the graph's outputs for ``bag`` (the graph is stopped on return)."""
    # This process's own node must use the transport the launcher gives the nodes (Fast DDS's large-data
    # transport): with different builtin transports the two sides may never discover each other.
    os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    with BagReader(bag) as reader:
        cameras, n_sets, last_stamp = reader.cameras, reader.num_sets, 0
        for s in reader.samples():
            last_stamp = s.stamp_ns
    return start_with_restarts(lambda: _collect_once(bag, plan, config, log, env, cameras, n_sets, last_stamp),
                               config.startup_attempts, lambda line: log(f"[eval] {line}"))


def _collect_once(bag: str | os.PathLike[str], plan: TargetPlan | None, config: GraphEvalConfig,
                  log: Callable[[str], None], env: dict[str, str] | None, cameras: list, n_sets: int,
                  last_stamp: int) -> GraphOutputs:
    """One start of the graph: its outputs, or ``DiscoveryStall`` before anything was played."""
    import tempfile

    from depthtracker.data.extrinsics import write_rig_file
    from depthtracker.ros.launch_plan import LaunchPlan, load_graph
    from depthtracker.ros.launcher import run_graph
    from depthtracker.ros.play import play
    from depthtracker.ros.qos import output_qos
    from depthtracker_msgs.msg import TargetRequest

    stop_graph, stop_play = threading.Event(), threading.Event()
    status: list[int] = []
    started: dict[str, float] = {}  # node -> when its process (re)started, monotonic

    def on_start(name: str, pid: int) -> None:
        started[name] = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="depthtracker-eval-") as tmp:
        rig = write_rig_file(Path(tmp) / "rig.yaml", cameras)
        graph = dataclasses.replace(load_graph(config.graph_config or None), enable_ingest=False,
                                    device=config.device, respawn=False)
        launch = LaunchPlan(graph, set_params=(f"perception:cameras={len(cameras)}", f"perception:extrinsics={rig}",
                                               "perception:reliability=reliable", *config.set_params))
        runner = threading.Thread(target=lambda: status.append(run_graph(launch, stop=stop_graph, log=log,
                                                                         on_start=on_start, env=env)),
                                  name="graph", daemon=True)
        runner.start()
        try:
            with standalone_node("depthtracker_eval", stop_play) as (node, executor), \
                    _graph_stops_first(stop_graph, runner):
                collector = _Collector(node, {c.frame_id: c.camera_id for c in cameras})
                target_pub = node.create_publisher(TargetRequest, "target/set", output_qos())
                deadline = time.monotonic() + config.startup_timeout_s
                topic = f"/cam{cameras[-1].camera_id}/image_raw"
                # both nodes up: the target request reaches perception and tracking, the cameras reach perception
                while (target_pub.get_subscription_count() < 2 or not node.count_subscribers(topic)) and not status:
                    unseen = check_discovery(node, started, config.discovery_timeout_s)
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the graph did not come up within {config.startup_timeout_s:g} s "
                                           f"(nodes not seen by this process: {', '.join(unseen) or 'none'}); "
                                           "raise startup_timeout_s if its models load slowly")
                    executor.spin_once(timeout_sec=0.1)
                if status:
                    raise RuntimeError(f"the graph stopped before the bag was played (status {status[0]}); see its log")
                if plan is not None:
                    from depthtracker.ros.conversions import header

                    cam = next(c for c in cameras if c.camera_id == plan.camera_id)
                    request = TargetRequest(header=header(plan.start_stamp_ns, cam.frame_id),
                                            camera_id=plan.camera_id, box=[float(v) for v in plan.start_box])
                    sends = _send_target(node, executor, target_pub, request, config.target_ack_s, status)
                    log(f"[eval] target/set: camera {plan.camera_id}, object {plan.object_id}, "
                        f"{len(plan.stamps)} frames (held by both nodes after {sends} send(s))")
                _wait_tracking_hears_perception(collector, executor, config.discovery_timeout_s, status)
                end = time.monotonic() + 1.0
                while time.monotonic() < end:
                    executor.spin_once(timeout_sec=0.05)
                spinner = threading.Thread(target=lambda: _spin_until(executor, stop_play), daemon=True)
                spinner.start()
                topics = [f"/cam{c.camera_id}/{k}" for c in cameras for k in ("image_raw", "camera_info")]
                t0 = time.monotonic()
                # the player's fresh publishers (on this node: one participant in this process, see play()) must
                # be matched before the first image goes out, on both sides: the perception node reports its side
                played = play(bag, rate=config.rate, topics=topics, reliability="reliable", stop=stop_graph,
                              wait_subscribers_s=10.0, delay_s=config.play_delay_s, node=node, wait_perception=True,
                              log=lambda line: log(f"[eval] play: {line}"))
                log(f"[eval] played {sum(played.counts.values())} messages ({n_sets} sets) in "
                    f"{time.monotonic() - t0:.1f} s")
                end = time.monotonic() + config.drain_s
                while time.monotonic() < end and collector.last_stamp < last_stamp and not status:
                    time.sleep(0.05)
                log(f"[eval] outputs drained {time.monotonic() - end + config.drain_s:.1f} s after the last image")
                # one more /diagnostics report of each node (1 s period by default), so the counts cover every set
                drained, end = time.monotonic(), time.monotonic() + config.diagnostics_wait_s
                while time.monotonic() < end and len(collector.losses(drained)) < 2 and not status:
                    time.sleep(0.05)
                losses = collector.losses(drained)
                stop_play.set()
                spinner.join(timeout=5.0)
                with collector.lock:
                    out = collector.out
        finally:
            stop_graph.set()
            runner.join(timeout=60.0)
    out.info = {"path": "ros-graph", "device": config.device, "rate": config.rate,
                "graph_status": status[0] if status else None, "losses": losses}
    return out


def _send_target(node: Any, executor: Any, pub: Any, request: Any, timeout_s: float, status: list[int]) -> int:
    """Publish ``request`` on ``target/set`` once a second until both nodes report it on ``/diagnostics``
    (perception: ``target_camera``, tracking: ``target`` not ``none``); returns how many sends it took.

    One send is not enough: the publisher seeing both subscriptions matched does not mean both subscribers have
    matched the publisher yet, and a volatile subscriber drops what was written before its side matched (seen in
    CI: the tracking node never held the target, so no target box came back). Sending the same request again
    before any image is played is harmless: both nodes start the same target at the same image."""
    from diagnostic_msgs.msg import DiagnosticArray

    from depthtracker.ros.qos import output_qos

    held = {"perception": False, "tracking": False}

    def on_diagnostics(msg: Any) -> None:
        nodes = node_diagnostics(msg)
        if nodes.get("perception", {}).get("target_camera") == str(request.camera_id):
            held["perception"] = True
        if nodes.get("tracking", {}).get("target", "none") != "none":
            held["tracking"] = True

    sub = node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, output_qos(depth=50))
    sends, next_send, deadline = 0, 0.0, time.monotonic() + timeout_s
    try:
        while not all(held.values()):
            if status:
                raise RuntimeError(f"the graph stopped before the bag was played (status {status[0]}); see its log")
            now = time.monotonic()
            if now > deadline:
                missing = [k for k, v in held.items() if not v]
                raise TimeoutError(f"the target request (target/set, camera {request.camera_id}) was not reported "
                                   f"on /diagnostics by the {' and '.join(missing)} node within {timeout_s:g} s "
                                   f"({sends} sends); is its diagnostics_period_s longer? raise target_ack_s")
            if now >= next_send:
                pub.publish(request)
                sends, next_send = sends + 1, now + 1.0
            executor.spin_once(timeout_sec=0.05)
    finally:
        node.destroy_subscription(sub)
    return sends


def _wait_tracking_hears_perception(collector: _Collector, executor: Any, timeout_s: float, status: list[int]) -> None:
    """Spin until the tracking node reports ``detections_publishers`` >= 1 on ``/diagnostics``: its subscription
    matched the perception node's detections. Both nodes seen by this process does not mean they see each other
    (a discovery stall is between two participants); a stall between them would leave every set without tracks.
    ``DiscoveryStall`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        with collector.lock:
            heard = collector.diagnostics.get("tracking", (0.0, {}))[1].get("detections_publishers", "none yet")
        if heard.isdigit() and int(heard) > 0:
            return
        if status:
            raise RuntimeError(f"the graph stopped before the bag was played (status {status[0]}); see its log")
        if time.monotonic() > deadline:
            raise DiscoveryStall(f"the tracking node did not hear the perception node's detections within "
                                  f"{timeout_s:g} s (detections_publishers on /diagnostics: {heard})")
        executor.spin_once(timeout_sec=0.05)


@contextlib.contextmanager
def _graph_stops_first(stop: threading.Event, runner: threading.Thread) -> Iterator[None]:
    """Stop the graph on exit. Entered after this process's node, it stops the graph before that node (its Fast DDS
    participant) is destroyed: destroying a participant while other processes hold large-data (TCP) connections to
    it can block for good (seen on a loaded machine: a read thread holds the channel's lock while teardown waits)."""
    try:
        yield
    finally:
        stop.set()
        runner.join(timeout=60.0)


def _spin_until(executor: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.05)


def evaluate_graph(bag: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                   config: GraphEvalConfig | None = None, replay: ReplayConfig | None = None,
                   compare: bool = False, log: Callable[[str], None] = print,
                   env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the graph on ``bag``, score it, write ``OUT/report.json`` + ``report.md``; returns the report.

    ``compare``: also run the same computation in process and report both and their difference."""
    cfg = config or GraphEvalConfig()
    rcfg = replay or ReplayConfig()
    if rcfg.max_sets:
        raise ValueError("evaluation through the graph plays the whole bag: ReplayConfig.max_sets must be 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    depth_off = any(p.replace(" ", "").lower() == "perception:depth_checkpoint=none" for p in cfg.set_params)
    plan = None if depth_off else plan_target(bag, rcfg)  # no tracking model, no target to follow
    outputs = collect_graph_outputs(bag, plan, cfg, log, env)
    report = score_outputs(bag, outputs, plan, rcfg)
    if compare:
        import yaml

        from depthtracker.eval.replay import load_perception_config, run_in_process
        from depthtracker.perception import PerceptionPipeline

        fields = {f.name for f in dataclasses.fields(load_perception_config())}
        over = {}  # the perception node's --set-param overrides that are pipeline fields apply here too
        for item in cfg.set_params:
            node, _, rest = item.partition(":")
            name, _, value = rest.partition("=")
            if node == "perception" and name in fields:
                over[name] = yaml.safe_load(value) if value else ""
        pipe = PerceptionPipeline.from_config(dataclasses.replace(load_perception_config(), device=cfg.device,
                                                                  **over))
        local = score_outputs(bag, run_in_process(bag, pipe, plan, config=rcfg), plan, rcfg)
        report["in_process"] = local
        report["difference"] = _difference(report, local)
    report["bag"] = str(bag)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=_jsonable) + "\n")
    (out / "report.md").write_text("\n".join(report_lines(report, "Evaluation through the ROS graph")) + "\n")
    return report


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(f"not JSON: {type(v).__name__}")


def _difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    out = {}
    for group, keys in (("depth", ("abs_rel", "delta1")), ("det", ("map50", "map50_95")), ("sot", ("success_auc",)),
                        ("mot", ("HOTA", "MOTA", "IDF1"))):
        for k in keys:
            x = a[group]["mean"][k] if group == "mot" else a[group].get(k, math.nan)
            y = b[group]["mean"][k] if group == "mot" else b[group].get(k, math.nan)
            out[f"{group}.{k}"] = float(x - y)
    return out
