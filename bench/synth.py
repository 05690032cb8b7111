"""Benchmark: synthetic world generation rate (DESIGN.md section 7: >= 30 camera-frames/s at 640x480 on 2 cores).

Usage: ``.venv/bin/python bench/synth.py [--cameras 4 --width 640 --height 480 --frames 60 --warmup 5]``

Renders ``warmup`` sets (not timed), then ``frames`` consecutive sets of all cameras, and reports camera-frames
per second (sets/s x cameras) with per-set latency percentiles, the target, PASS/FAIL and the machine.
Exit status 0 on PASS, 1 on FAIL.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import numpy as np
from _machine import machine  # bench/ is on sys.path when a script here runs
from depthtracker.data.synth import SynthConfig, SynthWorld

TARGET_CAMERA_FPS = 30.0  # DESIGN.md section 7


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=60, help="timed sets (all cameras each)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed sets rendered first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-std", type=float, default=0.0, help="sensor noise, 8-bit units (0 = off)")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.warmup < 0:
        parser.error("--frames must be >= 1 and --warmup >= 0")

    load_before = os.getloadavg()[0]
    fps = SynthConfig().fps
    cfg = SynthConfig(cameras=args.cameras, width=args.width, height=args.height, seed=args.seed,
                      noise_std=args.noise_std, seconds=(args.warmup + args.frames) / fps)
    t0 = time.perf_counter()
    world = SynthWorld(cfg)
    setup_s = time.perf_counter() - t0
    for i in range(args.warmup):
        world.render(i)
    lat = []
    start = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.frames):
        t = time.perf_counter()
        world.render(i)
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    sets_per_s = args.frames / total
    cam_fps = sets_per_s * args.cameras
    p50, p95 = (1e3 * np.percentile(lat, q) for q in (50, 95))
    verdict = "PASS" if cam_fps >= TARGET_CAMERA_FPS else "FAIL"
    print(f"machine: {machine()}")
    print(f"date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"1-min load average before / after the run: {load_before:.2f} / {os.getloadavg()[0]:.2f} "
          f"(other processes on the same cores lower the rate)")
    print(f"config: {args.cameras} cameras x {args.width}x{args.height}, {cfg.num_objects} objects, "
          f"noise_std={args.noise_std}, {args.frames} timed sets after {args.warmup} warm-up")
    print(f"world setup (rig, backgrounds): {setup_s * 1e3:.0f} ms")
    print(f"per set: p50 {p50:.1f} ms, p95 {p95:.1f} ms; {sets_per_s:.1f} sets/s")
    print(f"camera-frames/s: {cam_fps:.1f} (target >= {TARGET_CAMERA_FPS:.0f}) {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
