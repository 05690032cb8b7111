"""``depthtracker record`` and ``depthtracker play``: bag recording and playback through rclpy, without rosbag2;
``depthtracker launch`` (``depthtracker.ros.launcher``): the perception graph as local processes.

``register(subparsers)`` adds the three subcommands to the core CLI. Importing this module loads no ROS module
(rclpy is imported inside the run functions; the launcher only starts processes), so the core CLI can import it
where ROS is absent; the subcommands then fail with a message saying what to install.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthtracker.ros.launcher import register as register_launch

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``record``, ``play`` and ``launch`` subcommands to ``sub`` (``parser.add_subparsers(...)``)."""
    p = sub.add_parser(
        "record",
        help="record ROS topics into a rosbag2 (mcap or sqlite3)",
        description="Record TOPICS from the running ROS graph into a new rosbag2 at BAG. The types come from the "
        "graph; messages are stored as received (CDR bytes, bit-exact) with their receive time. QoS adapts to the "
        "publishers (reliable / best-effort, transient-local for latched topics). Stops on Ctrl-C, SIGTERM or "
        "after --for SECONDS; the bag appears under its name only once it is complete.",
    )
    p.add_argument("--out", required=True, type=Path, metavar="BAG", help="bag folder to create (must not exist)")
    p.add_argument("--topics", required=True, nargs="+", metavar="T", help="topics to record, e.g. /cam0/image_raw")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (default mcap)")
    p.add_argument("--for", dest="duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                   help="how long to wait for the topics to appear (default 10)")
    p.set_defaults(func=run_record)

    p = sub.add_parser(
        "play",
        help="play a rosbag2 into the ROS graph",
        description="Publish the messages of BAG as recorded (CDR bytes, bit-exact), paced to the recorded times. "
        "Camera topics (Image, CameraInfo) use sensor-data QoS with --reliability; /tf_static is latched; others "
        "are reliable. Topics whose message package is not installed are skipped with a warning.",
    )
    p.add_argument("bag", type=Path, metavar="BAG", help="rosbag2 folder (mcap or sqlite3)")
    p.add_argument("--rate", type=float, default=1.0, metavar="R", help="playback speed factor (default 1)")
    p.add_argument("--loop", action="store_true", help="start over at the end of the bag")
    p.add_argument("--topics", nargs="+", metavar="T", default=None, help="play only these topics")
    p.add_argument("--start-offset", type=float, default=0.0, metavar="S", help="skip the first S seconds")
    p.add_argument("--clock", action="store_true", help="publish /clock with the bag time (for use_sim_time)")
    p.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort",
                   help="QoS reliability of the camera topics (default best_effort)")
    p.add_argument("--delay", type=float, default=0.0, metavar="S",
                   help="wait S seconds before the first message so subscribers can connect (default 0)")
    p.add_argument("--wait-subscribers", type=float, default=0.0, metavar="S",
                   help="first wait up to S seconds until every played topic (but /tf_static) has --subscribers "
                   "matched subscribers (default 0: no wait)")
    p.add_argument("--subscribers", type=int, default=1, metavar="K",
                   help="subscribers per topic that --wait-subscribers waits for (default 1)")
    p.add_argument("--wait-perception", action="store_true",
                   help="within --wait-subscribers, also wait until a perception node reports on /diagnostics that "
                   "its camera subscriptions hear a publisher (camera_publishers >= 1; its side of the match)")
    p.set_defaults(func=run_play)

    register_launch(sub)


def _ros_missing(exc: ImportError) -> ValueError:
    return ValueError(f"ROS 2 Python packages are not installed ({exc}); run make setup")


def run_record(args: argparse.Namespace) -> int:
    try:
        from depthtracker.ros.record import record
    except ImportError as exc:
        raise _ros_missing(exc) from exc
    res = record(args.out, args.topics, storage=args.storage, duration_s=args.duration, wait_s=args.wait,
                 log=lambda s: print(s, file=sys.stderr))
    total = sum(res.counts.values())
    per_topic = ", ".join(f"{t}: {res.counts.get(t, 0)}" for t in res.types)
    print(f"wrote {res.path} ({args.storage}): {total} messages in {res.seconds:.2f} s ({per_topic})")
    missed = {t: k for t, k in res.missed.items() if k != 0}
    print("missed (sent, never recorded): " + (", ".join(f"{t}: {'unknown' if k is None else k}"
                                                           for t, k in missed.items()) or "none"))
    return 0


def run_play(args: argparse.Namespace) -> int:
    try:
        from depthtracker.ros.play import play
    except ImportError as exc:
        raise _ros_missing(exc) from exc
    res = play(args.bag, rate=args.rate, loop=args.loop, topics=args.topics, start_offset_s=args.start_offset,
               clock=args.clock, reliability=args.reliability, delay_s=args.delay,
               wait_subscribers_s=args.wait_subscribers, min_subscribers=args.subscribers,
               wait_perception=args.wait_perception,
               log=lambda s: print(s, file=sys.stderr))
    total = sum(res.counts.values())
    print(f"played {total} messages in {res.wall_s:.3f} s of wall time (bag span {res.bag_span_s:.3f} s, "
          f"{res.loops} pass(es), {res.clock_messages} clock, {res.publish_errors} publish errors)")
    return 0
