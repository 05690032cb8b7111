"""The ROS transport path of ``bench/graph.py`` (``--path ros``; the module docstring there describes the
measurement): a loader node in this process plays the sets into the graph's camera topics and monitors ``tracks``,
the perception and tracking nodes run as processes, a run at one rate is measured as ``ros2_benchmark`` does and the
peak input rate is searched by doubling and bisection.

Imports rclpy and the message packages only inside the functions that need them: loading this module needs no ROS.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from graph_sets import fmt, ping_pong, stats_ms  # bench/ is on sys.path when a script here runs

LOADER_SHORTFALL = 0.95  # a run whose loader sent less than this share of the asked rate is loader-bound


class Loader:
    """Publishes pre-built sets at a paced rate and records when ``tracks`` of each stamp come back."""

    def __init__(self, node: Any, images: list[list[Any]], infos: list[Any]) -> None:
        from depthtracker.ros.qos import camera_qos, output_qos
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        from depthtracker_msgs.msg import TrackArray

        n = len(infos)
        self.node, self.images, self.infos, self.order, self.k = node, images, infos, ping_pong(len(images)), 0
        cam = camera_qos("reliable")
        self.img_pubs = [node.create_publisher(Image, f"cam{i}/image_raw", cam) for i in range(n)]
        self.info_pubs = [node.create_publisher(CameraInfo, f"cam{i}/camera_info", cam) for i in range(n)]
        self.arrivals: dict[int, int] = {}  # stamp ns -> first arrival, wall ns
        self.diag: dict[str, tuple[int, dict[str, str]]] = {}  # "perception" | "tracking" -> (arrival ns, values)
        # deep monitor queue: a busy monitor thread must not lose answers and count them as drops
        deep = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(TrackArray, "tracks", self._on_tracks, deep)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, output_qos(50))

    def _on_tracks(self, msg: Any) -> None:
        now = time.time_ns()
        self.arrivals.setdefault(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, now)

    def _on_diag(self, msg: Any) -> None:
        from depthtracker.ros.conversions import node_diagnostics

        now = time.time_ns()
        for name, values in node_diagnostics(msg).items():
            self.diag[name] = (now, values)

    def ready(self) -> bool:
        return all(p.get_subscription_count() for p in self.img_pubs) and self.node.count_publishers("tracks") > 0

    def publish_set(self) -> int:
        from depthtracker.ros.conversions import stamp_to_msg

        msgs = self.images[self.order[self.k % len(self.order)]]
        self.k += 1
        stamp = time.time_ns()
        t = stamp_to_msg(stamp)
        for info, img, ipub, pub in zip(self.infos, msgs, self.info_pubs, self.img_pubs):
            info.header.stamp = t
            ipub.publish(info)
            img.header.stamp = t
            pub.publish(img)
        return stamp

    def play(self, rate: float, seconds: float, stop: threading.Event) -> tuple[list[int], int, float]:
        """Publish at ``rate`` sets/s for ``seconds``; returns the stamps sent, publish errors and the send span, s.

        The schedule is absolute (no drift), but a loader late by more than a period restarts it instead of
        bursting to catch up: the rate it achieves is then lower, and recorded."""
        period, n = 1.0 / rate, max(1, round(rate * seconds))
        stamps, errors = [], 0
        t_next = t_first = time.perf_counter()
        for _ in range(n):
            delay = t_next - time.perf_counter()
            if delay > 0 and stop.wait(delay):
                break
            if delay < -period:
                t_next = time.perf_counter()
            try:
                stamps.append(self.publish_set())
            except Exception:  # noqa: BLE001 - rclpy raises RCLError under load: count it as not sent
                errors += 1
            t_next += period
        return stamps, errors, time.perf_counter() - t_first


def _diag_numbers(values: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        try:
            out[k] = float(v) if "." in v or v == "nan" else int(v)
        except ValueError:
            out[k] = v
    return out


def measure(loader: Loader, rate: float, args: argparse.Namespace, stop: threading.Event, kind: str) -> dict:
    """One ros2_benchmark run at ``rate``: warm-up (not counted), the counted window, the drain."""
    loader.arrivals.clear()
    if args.warmup > 0:
        loader.play(rate, args.warmup, stop)
    before = {name: _diag_numbers(v) for name, (_, v) in loader.diag.items()}
    stamps, errors, span = loader.play(rate, args.duration, stop)
    last = time.time_ns()
    end = time.monotonic() + args.drain
    while time.monotonic() < end and not stop.is_set() and not all(s in loader.arrivals for s in stamps):
        time.sleep(0.02)
    end = time.monotonic() + 1.5  # one diagnostics period past the last set, for the cross-check
    while time.monotonic() < end and not stop.is_set() and any(t < last for t, _ in loader.diag.values()):
        time.sleep(0.05)
    after = {name: _diag_numbers(v) for name, (_, v) in loader.diag.items()}
    lat = [(loader.arrivals[s] - s) / 1e6 for s in stamps if s in loader.arrivals]
    sent = len(stamps)
    # sets per second between the first and the last publication (the stamps are the publication times)
    achieved = (sent - 1) / ((stamps[-1] - stamps[0]) / 1e9) if sent > 1 and stamps[-1] > stamps[0] else rate
    p, t = after.get("perception", {}), after.get("tracking", {})
    delta = {k: p.get(k, 0) - before.get("perception", {}).get(k, 0)
             for k in ("dropped_sets", "sets_processed", "sync_dropped", "images_missed") if isinstance(p.get(k), int)}
    return {
        "kind": kind, "requested_hz": rate, "achieved_input_hz": achieved, "sent": sent, "answered": len(lat),
        "dropped": sent - len(lat), "drop_fraction": (sent - len(lat)) / sent if sent else 1.0,
        "publish_errors": errors, "output_hz": achieved * len(lat) / sent if sent else 0.0, "span_s": span,
        "loader_bound": achieved < LOADER_SHORTFALL * rate, "latency_ms": stats_ms(lat),
        "node_diagnostics": {"perception_delta": delta, "perception": p, "tracking": t},
    }


def peak_search(run, args: argparse.Namespace) -> tuple[dict | None, str, list[dict]]:
    """Doubling from ``start_rate`` until a run drops more than ``drop_limit``, then bisection; returns the best
    passing run, what bounded it, and every run."""
    runs: list[dict] = []

    def ok(r: dict) -> bool:
        return r["drop_fraction"] <= args.drop_limit

    rate, best, fail = args.start_rate, None, None
    while True:
        r = run(rate, "search")
        runs.append(r)
        if ok(r):
            best = r
            if r["loader_bound"]:
                return best, "loader", runs
            if rate * 2 > args.max_rate:
                return best, "max_rate", runs
            rate *= 2
        else:
            fail = r
            if best is not None:
                break
            if rate / 2 < args.min_rate:
                return None, "below min_rate", runs
            rate /= 2
    for _ in range(args.bisect_steps):
        mid = 0.5 * (best["requested_hz"] + fail["requested_hz"])
        r = run(mid, "search")
        runs.append(r)
        if ok(r):
            best = r
            if r["loader_bound"]:
                return best, "loader", runs
        else:
            fail = r
    return best, "graph", runs


def run_ros(args: argparse.Namespace, sets: list, cameras: list, workdir: Path) -> dict[str, Any]:
    """Start the graph, play the sets into it, search the peak and measure latency at ``args.rate``; a discovery
    stall of the middleware while the graph comes up (a node running ``args.discovery_timeout`` s unseen by the
    loader) starts it again, up to ``args.startup_attempts`` starts, as the evaluation does."""
    env = {"ROS_DOMAIN_ID": str(args.domain_id), "ROS_LOG_DIR": str(workdir / "ros_log"),
           "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    os.environ.update(env)  # before rclpy starts: the loader node in this process uses the same settings
    from depthtracker.data.extrinsics import write_rig_file
    from depthtracker.ros.conversions import camera_info_msg, image_msg
    from depthtracker.ros.launch_plan import GraphSpec, LaunchPlan
    from depthtracker.ros.runtime import start_with_restarts

    rig = write_rig_file(workdir / "rig.yaml", cameras)
    params = [f"perception:cameras={len(cameras)}", "perception:reliability=reliable", f"perception:extrinsics={rig}",
              f"perception:depth_checkpoint={args.depth_checkpoint}",
              f"perception:detector_checkpoint={args.detector_checkpoint}",
              f"perception:model_concurrency={args.model_concurrency}"]
    plan = LaunchPlan(GraphSpec(enable_ingest=False, device=args.device, respawn=False), set_params=tuple(params))
    # Images converted once; each publication only restamps them. Poses come from the rig file, not from P.
    images = [[image_msg(im, "rgb8", 0, c.frame_id) for im, c in zip(s, cameras)] for s in sets]
    infos = [camera_info_msg(c, 0) for c in cameras]
    starts = 0
    with (workdir / "graph.log").open("w") as log_file:  # every start's lines, in order

        def once() -> dict[str, Any]:
            nonlocal starts
            starts += 1
            return _run_once(args, plan, images, infos, env, workdir, log_file)

        def note(line: str) -> None:
            print(f"  {line}", file=sys.stderr, flush=True)
            log_file.write(f"[bench] {line}\n")

        result = start_with_restarts(once, args.startup_attempts, note)
    return {**result, "graph_starts": starts, "environment": env,
            "graph_argv": [list(c.argv) for c in plan.children(workdir)]}


def _run_once(args: argparse.Namespace, plan: Any, images: list, infos: list, env: dict[str, str], workdir: Path,
              log_file: Any) -> dict[str, Any]:
    """One start of the graph and every run on it; ``DiscoveryStall`` while it comes up."""
    from depthtracker.ros.launcher import run_graph
    from depthtracker.ros.runtime import check_discovery, standalone_node

    log_lines: deque[str] = deque(maxlen=200)

    def log(line: str) -> None:
        log_lines.append(line)
        log_file.write(line + "\n")

    stop = threading.Event()
    status: list[int] = []
    started: dict[str, float] = {}  # node -> when its process started, monotonic

    def on_start(name: str, pid: int) -> None:
        started[name] = time.monotonic()

    graph = threading.Thread(target=lambda: status.append(run_graph(plan, log=log, on_start=on_start, stop=stop,
                                                                    env={**os.environ, **env})), daemon=True)

    def failed(what: str) -> RuntimeError:
        return RuntimeError(f"{what}; graph log ({workdir / 'graph.log'}), last lines:\n" + "\n".join(log_lines))

    graph.start()
    try:
        with standalone_node("graph_bench_loader", stop) as (node, executor):
            loader = Loader(node, images, infos)

            def spin() -> None:  # the monitor's callbacks run here; the main thread only publishes
                while not stop.is_set():
                    executor.spin_once(timeout_sec=0.05)

            spinner = threading.Thread(target=spin, name="monitor", daemon=True)
            spinner.start()
            t0 = time.monotonic()
            while not loader.ready():  # the perception node subscribes once its models are loaded
                check_discovery(node, started, args.discovery_timeout)
                if not graph.is_alive() or stop.is_set() or time.monotonic() - t0 > args.startup_timeout:
                    raise failed("the graph did not come up")
                time.sleep(0.1)
            while not loader.arrivals:  # the first set answered: models warm, every connection made
                check_discovery(node, started, args.discovery_timeout)
                if not graph.is_alive() or stop.is_set() or time.monotonic() - t0 > args.startup_timeout:
                    raise failed("no tracks came back")
                loader.publish_set()
                time.sleep(0.5)
            startup_s = time.monotonic() - t0

            def run(rate: float, kind: str) -> dict:
                r = measure(loader, rate, args, stop, kind)
                if not graph.is_alive() or stop.is_set():
                    raise failed("the graph stopped during a run")
                print(f"  {kind:8s} {rate:8.2f} Hz: sent {r['sent']}, dropped {r['drop_fraction']:.1%}, "
                      f"latency p50 {fmt(r['latency_ms']['p50'])} ms p99 {fmt(r['latency_ms']['p99'])} ms",
                      file=sys.stderr, flush=True)
                return r

            best, bound, runs = (None, "not searched", []) if args.no_peak else peak_search(run, args)
            fixed = run(args.rate, "latency")
            runs.append(fixed)
            stop.set()
            spinner.join(timeout=5.0)
    finally:
        stop.set()
        graph.join(timeout=60.0)
    device = fixed["node_diagnostics"]["perception"].get("device", args.device)
    n = len(infos)
    sustained = fixed["drop_fraction"] <= args.drop_limit
    summary = {
        "peak_sets_per_s": best["achieved_input_hz"] if best else None,
        "peak_camera_fps": best["achieved_input_hz"] * n if best else None, "peak_bound": bound,
        "latency_rate_hz": args.rate, "latency_p50_ms": fixed["latency_ms"]["p50"],
        "latency_p99_ms": fixed["latency_ms"]["p99"], "latency_drop_fraction": fixed["drop_fraction"],
        "latency_sustained": sustained,
        "latency_note": "arrival of tracks - image stamp" + ("" if sustained else
                                                             f"; {args.rate:g} Hz NOT sustained (drops above "
                                                             f"{args.drop_limit:.0%})"),
        "latency_at_peak": ({"rate_hz": best["requested_hz"], **best["latency_ms"],
                             "drop_fraction": best["drop_fraction"]} if best and not sustained else None),
    }
    return {"device": device, "checkpoints": {"depth": args.depth_checkpoint, "detector": args.detector_checkpoint},
            "model_concurrency": fixed["node_diagnostics"]["perception"].get("model_concurrency", "not reported"),
            "startup_s": startup_s, "graph_status": status[0] if status else None, "runs": runs, "summary": summary}
