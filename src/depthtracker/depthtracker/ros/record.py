"""Record ROS topics into a rosbag2 without rosbag2: rclpy raw subscriptions -> rosbags ``Writer``.

``record(out, topics, storage="mcap")`` (what ``depthtracker record`` runs):

* waits up to ``wait_s`` for every topic to appear in the graph and takes its type from there (a topic offered
  with two types is an error); the message classes must be importable in this Python (a ``*_msgs`` package);
* subscribes with ``raw=True``: the CDR bytes go to the bag untouched (no deserialisation, bit-exact), stamped
  with the receive time (the node's clock, so ``use_sim_time`` is honoured), as rosbag2 does. Fast DDS delivers a
  serialized payload padded with zero bytes to a multiple of 4; those stay (rosbag2 stores them too), so a
  message played from a bag written by rosbags may come back up to 3 bytes longer, with the same content;
* QoS adapts to the publishers found, as rosbag2 does: reliable when every publisher is reliable, else best-effort;
  transient-local when every publisher is (``/tf_static``), so latched messages are recorded;
* messages a publisher sent that never reached the bag (the recorder's queue overwritten while it was behind, or a
  best-effort link's losses) are counted per topic from the publishers' sequence numbers (``RecordResult.missed``),
  logged at the end and printed by ``depthtracker record``;
* the bag is written into a hidden sibling folder and renamed into place when it is closed, so a bag under its
  name is complete; SIGINT / SIGTERM (or ``duration_s``, or ``stop``) end the recording and close the bag cleanly.
  Storage: ``mcap`` (default) or ``sqlite3``; messages are registered with ``depthtracker.data.bags.typestore()``.
"""

from __future__ import annotations

import collections
import importlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer

from depthtracker.data.bags import STORAGES, BagError, typestore
from depthtracker.ros.qos import MissedMessages
from depthtracker.ros.runtime import standalone_node

__all__ = ["RecordResult", "record", "message_class", "absolute_topic"]

_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@dataclass
class RecordResult:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)  # messages written per topic
    types: dict[str, str] = field(default_factory=dict)  # topic -> type
    seconds: float = 0.0  # recording wall time
    # per topic: messages its publishers sent after the first one heard that never reached the bag (overwritten in
    # the subscription's queue while the recorder was behind, or lost on a best-effort link), from their sequence
    # numbers; None when the middleware gives none
    missed: dict[str, int | None] = field(default_factory=dict)


def absolute_topic(name: str) -> str:
    return name if name.startswith("/") else "/" + name


def message_class(msgtype: str) -> type:
    """``pkg/msg/Name`` -> the rclpy message class; ``ValueError`` naming the type when it is not installed."""
    try:
        pkg, kind, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ValueError, ImportError, AttributeError) as exc:
        raise ValueError(f"message type {msgtype!r} is not installed in this Python ({exc})") from exc


def _adapted_qos(infos: list[Any]) -> QoSProfile:
    reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def _wait_for_topics(node: Any, executor: Any, topics: Sequence[str], wait_s: float,
                     stopped: Callable[[], bool]) -> dict[str, str]:
    deadline = time.monotonic() + wait_s
    while True:
        graph = dict(node.get_topic_names_and_types())
        found = {t: graph[t] for t in topics if t in graph and node.count_publishers(t) > 0}
        if len(found) == len(topics) or time.monotonic() >= deadline or stopped():
            break
        executor.spin_once(timeout_sec=0.1)
    missing = sorted(set(topics) - set(found))
    if missing and stopped():
        raise KeyboardInterrupt  # interrupted while waiting: nothing recorded, no bag
    if missing:
        raise ValueError(f"topic(s) {missing} did not appear within {wait_s:g} s (no publisher); check the names "
                         f"and the ROS_DOMAIN_ID, or raise --wait")
    types = {}
    for t, ts in found.items():
        if len(ts) != 1:
            raise ValueError(f"topic {t} is published with several types {ts}: cannot record it")
        types[t] = ts[0]
    return types


def record(
    out: str | os.PathLike[str],
    topics: Sequence[str],
    storage: str = "mcap",
    duration_s: float | None = None,
    wait_s: float = 10.0,
    stop: threading.Event | None = None,
    log: Callable[[str], None] | None = None,
) -> RecordResult:
    """Record ``topics`` into a new bag ``out`` until SIGINT/SIGTERM, ``duration_s`` or ``stop`` (module docstring).

    Raises ``ValueError`` (``BagError``) before anything is written when ``out`` exists, ``storage`` is unknown, a
    topic does not appear within ``wait_s`` or its type is not installed.
    """
    if storage not in STORAGES:
        raise BagError(f"unknown bag storage {storage!r}: choose one of {', '.join(STORAGES)}")
    if not topics:
        raise ValueError("record needs at least one topic")
    if duration_s is not None and not duration_s > 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration_s}")
    out = Path(out)
    if out.exists():
        raise BagError(f"output bag {out} already exists: choose another path or delete it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    topics = list(dict.fromkeys(absolute_topic(t) for t in topics))
    log = log or (lambda s: None)
    stop = stop or threading.Event()

    with standalone_node("depthtracker_record", stop) as (node, executor):
        tmpdir: Path | None = None
        writer: Writer | None = None
        try:
            types = _wait_for_topics(node, executor, topics, wait_s, stop.is_set)
            classes = {t: message_class(ty) for t, ty in types.items()}
            store = typestore()
            tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
            writer = Writer(tmpdir / out.name, version=9, storage_plugin=_PLUGINS[storage])
            writer.open()
            counts: dict[str, int] = collections.Counter()
            missed = {t: MissedMessages() for t in topics}
            clock = node.get_clock()
            for t in topics:
                try:
                    conn = writer.add_connection(t, types[t], typestore=store)
                except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds for an unknown type
                    raise BagError(f"cannot record {t}: type {types[t]} is unknown to the bag typestore "
                                   f"({exc})") from exc

                # two positional parameters: rclpy passes the MessageInfo (the publisher's sequence number)
                def on_msg(data: bytes, info: dict, conn: Any = conn, topic: str = t) -> None:
                    writer.write(conn, clock.now().nanoseconds, data)
                    counts[topic] += 1
                    missed[topic].update(info)

                infos = node.get_publishers_info_by_topic(t)
                node.create_subscription(classes[t], t, on_msg, _adapted_qos(infos), raw=True)
            log(f"recording {len(topics)} topic(s) into {out} ({storage}); Ctrl-C to stop")
            t0 = time.monotonic()
            while not stop.is_set() and (duration_s is None or time.monotonic() - t0 < duration_s):
                executor.spin_once(timeout_sec=0.05)
            seconds = time.monotonic() - t0
            writer.close()
            writer = None
            os.replace(tmpdir / out.name, out)
            lost = {t: None if m.unsupported else m.missed for t, m in missed.items()}
            if any(lost.values()):
                log("messages sent but never recorded (the recorder fell behind, or a best-effort link lost them): "
                    + ", ".join(f"{t}: {k}" for t, k in lost.items() if k))
            return RecordResult(out, dict(counts), types, seconds, lost)
        finally:
            if writer is not None:  # failed half-way: nothing that looks like a bag stays behind
                try:
                    writer.close()
                except Exception:  # noqa: BLE001 - the original error is what matters
                    pass
            if tmpdir is not None:
                shutil.rmtree(tmpdir, ignore_errors=True)
