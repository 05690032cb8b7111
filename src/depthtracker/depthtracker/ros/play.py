"""Play a rosbag2 into the ROS graph without rosbag2: rosbags ``Reader`` -> ``publisher.publish(raw_bytes)``.

``play(bag, rate=1.0, loop=False, topics=None, start_offset_s=0.0, clock=False)`` (what ``depthtracker play`` runs):

* messages go out as the bag stores them (CDR bytes, never deserialised: bit-exact), in bag order, paced to the
  recorded receive times divided by ``rate`` (each message waits for its own due time on the wall clock; when
  playback falls behind, the late messages go out at once until it is on time again);
* ``start_offset_s`` skips the first seconds of the bag; ``topics`` keeps only those topics; ``loop`` starts over
  at the end (the bag time then jumps back, as with ``ros2 bag play --loop``);
* ``clock``: publishes ``/clock`` (``rosgraph_msgs/Clock``) with the bag time every ``clock_period_s`` of wall time
  and before every message, so nodes with ``use_sim_time:=true`` follow the bag;
* QoS: camera topics (``sensor_msgs/msg/Image``, ``CompressedImage``, ``CameraInfo``) sensor-data-like with
  ``reliability`` a parameter; ``/tf_static`` reliable and transient-local (latched); everything else reliable;
* a topic whose message type is not installed in this Python is skipped with a warning (e.g. ``/tf_static``
  where ``tf2_msgs`` is absent); a failed publish is counted, not fatal;
* ``delay_s`` waits before the first message so that subscribers can discover the publishers (the
  ``ros2 bag play --delay`` option); ``wait_subscribers_s`` first waits (at most that long) until every played topic
  but the latched ``/tf_static`` has ``min_subscribers`` matched subscribers, so that the subscribers (a recorder,
  the perception node) miss nothing at the start; a wait that runs out is logged and playback goes on. That wait
  sees the publishers' side of the match only: a volatile subscriber that has not yet matched a publisher drops what
  it writes. ``wait_perception`` closes that gap for the perception node, which reports its side: after the
  subscriber wait, playback waits (within the same ``wait_subscribers_s``) until a perception node reports
  ``camera_publishers`` >= 1 on ``/diagnostics`` (what ``depthtracker eval graph`` and a launched bag replay do).
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import Reader

from depthtracker.data.bags import BagError
from depthtracker.ros.launch_plan import PLAYED_LINE
from depthtracker.ros.qos import camera_qos, latched_qos, output_qos
from depthtracker.ros.record import absolute_topic, message_class
from depthtracker.ros.runtime import standalone_node

__all__ = ["PlayResult", "play", "CAMERA_TYPES"]

CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo")


@dataclass
class PlayResult:
    counts: dict[str, int] = field(default_factory=dict)  # messages published per topic
    skipped_topics: dict[str, str] = field(default_factory=dict)  # topic -> why
    publish_errors: int = 0
    clock_messages: int = 0
    wall_s: float = 0.0  # from the first message to the last, all loops
    bag_span_s: float = 0.0  # bag time covered by one pass (after the offset)
    loops: int = 0


def _qos_for(topic: str, msgtype: str, reliability: str) -> Any:
    if topic == "/tf_static":
        return latched_qos()
    if msgtype in CAMERA_TYPES:
        return camera_qos(reliability, depth=10)
    return output_qos(depth=100)


def play(
    bag: str | os.PathLike[str],
    rate: float = 1.0,
    loop: bool = False,
    topics: Sequence[str] | None = None,
    start_offset_s: float = 0.0,
    clock: bool = False,
    reliability: str = "best_effort",
    delay_s: float = 0.0,
    clock_period_s: float = 0.01,
    wait_subscribers_s: float = 0.0,
    min_subscribers: int = 1,
    stop: threading.Event | None = None,
    log: Callable[[str], None] | None = None,
    node: Any | None = None,
    wait_perception: bool = False,
) -> PlayResult:
    """Publish the bag's messages (module docstring); returns what was published. Stops on SIGINT/SIGTERM, at the
    end of the bag (unless ``loop``) or when ``stop`` is set.

    ``node``: publish from this node (whose executor the caller spins) instead of a node of its own; its publishers
    are destroyed on return. A process that plays beside its own node should pass it: destroying a second Fast DDS
    participant while the graph's nodes are connected to it over the large-data (TCP) transport can block for good."""
    if not (rate > 0 and rate < float("inf")):
        raise ValueError(f"rate must be a positive number, got {rate}")
    if not start_offset_s >= 0:
        raise ValueError(f"start offset must be >= 0 seconds, got {start_offset_s}")
    if not min_subscribers >= 1:
        raise ValueError(f"the number of subscribers to wait for must be >= 1, got {min_subscribers}")
    if wait_perception and not wait_subscribers_s > 0:
        raise ValueError("wait_perception is waited for within wait_subscribers_s: give wait_subscribers_s > 0 "
                         "(--wait-subscribers S) with it")
    if not delay_s >= 0 or not clock_period_s > 0:
        raise ValueError(f"delay must be >= 0 and the clock period > 0 s, got {delay_s}, {clock_period_s}")
    camera_qos(reliability)  # validates the name
    bag = Path(bag)
    if not (bag / "metadata.yaml").is_file():
        raise BagError(f"{bag} is not a rosbag2 folder (no metadata.yaml)")
    log = log or (lambda s: None)
    stop = stop or threading.Event()
    result = PlayResult()
    wanted = None if topics is None else {absolute_topic(t) for t in topics}

    with _player_node(node, stop) as (node, executor), Reader(bag) as reader, \
            (_perception_hears_cameras(node) if wait_perception else contextlib.nullcontext()) as heard:
        conns, pubs = [], {}
        for c in reader.connections:
            if wanted is not None and c.topic not in wanted:
                continue
            if c.topic not in pubs:
                try:
                    cls = message_class(c.msgtype)
                except ValueError as exc:
                    result.skipped_topics[c.topic] = str(exc)
                    log(f"skipping {c.topic}: {exc}")
                    continue
                pubs[c.topic] = node.create_publisher(cls, c.topic, _qos_for(c.topic, c.msgtype, reliability))
            conns.append(c)
        if wanted is not None and wanted - {c.topic for c in reader.connections}:
            raise BagError(f"bag {bag} has no topic(s) {sorted(wanted - {c.topic for c in reader.connections})}")
        clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            clock_pub = node.create_publisher(Clock, "/clock", output_qos(depth=100))
        start_ns = reader.start_time + int(round(start_offset_s * 1e9))
        result.bag_span_s = max(reader.end_time - 1 - start_ns, 0) * 1e-9  # end_time is exclusive
        counts: dict[str, int] = collections.Counter()
        if wait_subscribers_s > 0:  # every topic matched by its subscribers (reliable ones then lose nothing)
            waited = {t: p for t, p in pubs.items() if t != "/tf_static"}  # latched: late subscribers still get it
            end = time.monotonic() + wait_subscribers_s
            while True:
                short = {t: p for t, p in waited.items() if p.get_subscription_count() < min_subscribers}
                if not short or stop.is_set() or time.monotonic() >= end:
                    break
                _idle(executor, 0.05)
            if short and not stop.is_set():
                log(f"after {wait_subscribers_s:g} s, {len(short)} topic(s) still have fewer than {min_subscribers} "
                    f"subscriber(s) (e.g. {next(iter(short))}: {next(iter(short.values())).get_subscription_count()}); "
                    "playing anyway")
            while heard is not None and not heard.is_set() and not stop.is_set():
                if time.monotonic() >= end:
                    log(f"after {wait_subscribers_s:g} s no perception node reported camera_publishers >= 1 on "
                        "/diagnostics (its side of the match); playing anyway (the first messages may be lost)")
                    break
                _idle(executor, 0.05)
        _sleep_until(time.monotonic() + delay_s, stop, executor)
        t_first = None
        while not stop.is_set():
            wall0 = time.monotonic()
            bag0 = None
            for conn, stamp, raw in reader.messages(connections=conns, start=start_ns):
                if bag0 is None:
                    bag0 = stamp
                    t_first = t_first or wall0
                due = wall0 + (stamp - bag0) * 1e-9 / rate
                if clock_pub is not None:
                    result.clock_messages += _pace_with_clock(due, wall0, bag0, rate, clock_period_s,
                                                              clock_pub, stop, executor)
                    result.clock_messages += _publish_clock(clock_pub, stamp)
                else:
                    _sleep_until(due, stop, executor)
                if stop.is_set():
                    break
                try:
                    pubs[conn.topic].publish(raw)
                    counts[conn.topic] += 1
                except Exception as exc:  # noqa: BLE001 - rclpy raises RCLError under load; count, go on
                    result.publish_errors += 1
                    log(f"publish on {conn.topic} failed: {exc}")
            result.loops += 1
            if not loop or bag0 is None:
                break
        result.wall_s = 0.0 if t_first is None else time.monotonic() - t_first
        result.counts = dict(counts)
        # Give reliable subscribers a moment to fetch the last messages before the publishers go away.
        _sleep_until(time.monotonic() + 0.3, threading.Event(), executor)
        if not stop.is_set():  # the launcher's cue (Child.done_line): what follows is teardown only
            log(f"{PLAYED_LINE}: {sum(counts.values())} messages")
        return result


@contextlib.contextmanager
def _perception_hears_cameras(node: Any) -> Iterator[threading.Event]:
    """An event set once a perception node reports, on ``/diagnostics``, at least one publisher matched on every
    camera subscription (``camera_publishers``): the subscriptions' side of the match, which a publisher's own count
    does not show. Where the player is the only camera publisher, that is the player seen from the perception side.
    Whoever spins ``node`` runs the subscription; it is destroyed on exit."""
    from diagnostic_msgs.msg import DiagnosticArray

    from depthtracker.ros.conversions import node_diagnostics

    heard = threading.Event()

    def on_diagnostics(msg: Any) -> None:
        value = node_diagnostics(msg, ("perception",)).get("perception", {}).get("camera_publishers", "0")
        if value.isdigit() and int(value) >= 1:
            heard.set()

    sub = node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, output_qos(depth=50))
    try:
        yield heard
    finally:
        node.destroy_subscription(sub)


@contextlib.contextmanager
def _player_node(node: Any | None, stop: threading.Event) -> Iterator[tuple[Any, Any]]:
    """(node, executor): a standalone node of its own, or the caller's ``node`` with no executor (the caller spins
    it); the publishers play creates on the caller's node are destroyed on exit."""
    if node is None:
        with standalone_node("depthtracker_play", stop) as pair:
            yield pair
        return
    before = set(map(id, node.publishers))
    try:
        yield node, None
    finally:
        for pub in [p for p in node.publishers if id(p) not in before]:
            node.destroy_publisher(pub)


def _idle(executor: Any, seconds: float) -> None:
    """Spin our own executor for up to ``seconds``, or just wait when the caller spins the node."""
    if executor is None:
        time.sleep(seconds)
    else:
        executor.spin_once(timeout_sec=seconds)


def _sleep_until(due: float, stop: threading.Event, executor: Any) -> None:
    while not stop.is_set():
        left = due - time.monotonic()
        if left <= 0:
            return
        _idle(executor, min(left, 0.05))


def _publish_clock(pub: Any, stamp_ns: int) -> int:
    from rosgraph_msgs.msg import Clock

    from depthtracker.ros.conversions import stamp_to_msg

    try:
        pub.publish(Clock(clock=stamp_to_msg(stamp_ns)))
    except Exception:  # noqa: BLE001 - a lost clock tick is harmless; the next one follows
        return 0
    return 1


def _pace_with_clock(due: float, wall0: float, bag0: int, rate: float, period: float, pub: Any,
                     stop: threading.Event, executor: Any) -> int:
    """Wait for ``due`` publishing /clock every ``period`` s of wall time with the bag time reached."""
    sent = 0
    while not stop.is_set():
        now = time.monotonic()
        if now >= due:
            return sent
        sent += _publish_clock(pub, bag0 + int((now - wall0) * rate * 1e9))
        _sleep_until(min(due, now + period), stop, executor)
    return sent
