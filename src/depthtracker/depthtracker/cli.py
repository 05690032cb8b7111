"""The ``depthtracker`` command. Each subcommand is a thin layer over an importable function.

Subcommands grow with the product; ``depthtracker --help`` lists those that exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="render the synthetic multi-camera world into a rosbag2",
        description="Render the synthetic world (config/synth.yaml, overridden by the flags) into a new rosbag2. "
        "The bag appears only when complete.",
    )
    p.add_argument("--out", required=True, type=Path, help="bag folder to create (must not exist)")
    p.add_argument("--config", type=Path, default=None, help="synth YAML (default: config/synth.yaml)")
    p.add_argument("--cameras", type=int, help="number of cameras")
    p.add_argument("--seconds", type=float, help="duration in seconds")
    p.add_argument("--fps", type=float, help="frames per second")
    p.add_argument("--width", type=int, help="image width in pixels")
    p.add_argument("--height", type=int, help="image height in pixels")
    p.add_argument("--seed", type=int, help="random seed (same seed, same bag)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (default mcap)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from depthtracker.configio import load_config
    from depthtracker.data.synth import SynthConfig
    from depthtracker.data.synth_bag import write_synth_bag

    config = load_config(SynthConfig, args.config, name="synth")
    overrides = {k: getattr(args, k) for k in ("cameras", "seconds", "fps", "width", "height", "seed")
                 if getattr(args, k) is not None}
    config = dataclasses.replace(config, **overrides)
    path = write_synth_bag(config, args.out, storage=args.storage, progress=not args.no_progress)
    n = round(config.seconds * config.fps)
    print(f"wrote {path} ({args.storage}): {config.cameras} cameras x {n} frames, {config.width}x{config.height}")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo on the embedded synthetic world",
        description="Render the default synthetic world into OUT/world (if absent) and write OUT/contact_sheet.png "
        "and OUT/cameras.mp4: every camera with its depth colour map and ground-truth boxes with ids.",
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of the demo world in seconds (default 4)")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from depthtracker.demo import run_demo

    run_demo(args.out, seconds=args.seconds)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from depthtracker import __version__

    parser = argparse.ArgumentParser(prog="depthtracker", description="Multi-camera depth and tracking for ROS 2.")
    parser.add_argument("--version", action="version", version=f"depthtracker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_synth(sub)
    _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:  # bad input: configs, bags and types raise ValueError naming the problem
        print(f"depthtracker {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"depthtracker {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
