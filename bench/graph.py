"""Benchmark: camera -> ``/tracks`` through the perception graph, measured as NVIDIA Isaac ROS measures graphs
(``ros2_benchmark``); DESIGN.md section 7.

Usage::

    .venv/bin/python bench/graph.py --preset edge-cpu [--depth-checkpoint PATH|none] [--out FILE.json]
    .venv/bin/python bench/graph.py --preset rig-4x640 --path inprocess --device cuda --out graph-h100.json

Paths (``--path``):

* ``ros`` (default): the perception and tracking nodes run as processes, started from the same launch plan as
  ``depthtracker launch`` (``config/perception.yaml``, ``config/tracking.yaml``; no ingest node) with reliable
  camera QoS and the rig's true poses (a rig file). In this process a loader node plays pre-rendered synthetic
  sets (``SynthWorld``, converted to ``sensor_msgs/Image`` once, played forwards then backwards so no object jumps)
  into ``camN/image_raw`` + ``camN/camera_info``, restamping each set with the wall clock when it is published, at
  a fixed rate; a monitor subscription on ``tracks`` records when each stamp comes back. As ros2_benchmark does:
  every run plays ``--warmup`` s (not counted), then ``--duration`` s (counted), then waits ``--drain`` s. A set is
  *dropped* when no ``tracks`` message with its stamp arrived; *latency* = arrival - stamp (one wall clock).
  **Peak throughput** = the highest input rate at which at most ``--drop-limit`` of the sets are dropped: the rate
  doubles from ``--start-rate`` until a run drops more, then ``--bisect-steps`` bisections. **Latency** is measured
  at ``--rate`` (30 Hz); when the graph cannot sustain that rate its latency there is reported with its drop rate,
  and the latency at the peak rate (the search's run at that rate) beside it. A node whose process runs
  ``--discovery-timeout`` s unseen by the loader while the graph comes up (a Fast DDS discovery stall; README,
  *Evaluation through the graph*) starts the graph again, up to ``--startup-attempts`` starts (``graph_starts``).
* ``inprocess``: the same computation without ROS (``PerceptionPipeline.process`` + one ``MultiObjectTracker``,
  box depths and track view per camera, as the tracking node does), sets back to back: per-set wall time p50/p99 and
  sets/s. Imports no rclpy (the GPU machine has no ROS wheels). Stamps advance by 1/``--rate`` s per set.

The loader runs on the same machine (and here the same 2 cores) as the graph; its achieved rate is recorded and a
run whose loader fell more than 5 % short of the asked rate is marked loader-bound (the peak is then a lower bound).
The perception node's ``/diagnostics`` (``dropped_sets``; ``images_missed``: camera images never taken, overwritten in
its DDS queues; ``latency_p50_ms``: image stamp to its publication) and
the tracking node's are stored per run as a cross-check (their 1 s period blurs a run's edges, so the
``perception_delta`` counts include part of the warm-up). Presets: ``edge-cpu`` = 1 x 320x240 on the CPU (target
>= 15 camera-frames/s), ``rig-4x640`` = 4 x 640x480 (H100 targets: p99 <= 15 ms, peak >= 500 camera-frames/s).
Exit status 0 when every applicable target passes (or none applies), 1 when one misses.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import machine  # bench/ is on sys.path when a script here runs
from depthtracker.perception import resolve_checkpoint
from graph_sets import fmt, ping_pong, render_sets, stats_ms  # shared with graph_ros.py, the --path ros half

PRESETS = {  # name -> (cameras, width, height, device)
    "edge-cpu": (1, 320, 240, "cpu"),
    "rig-4x640": (4, 640, 480, "auto"),
}
# DESIGN.md section 7, per rig size: (what, key into the summary, op, value, where the target is stated for)
TARGETS = {
    (1, 320, 240): [("peak camera-frames/s", "peak_camera_fps", ">=", 15.0, "2-core CPU, edge depth model")],
    (4, 640, 480): [("latency p99 at 30 Hz, ms", "latency_p99_ms", "<=", 15.0, "H100"),
                    ("peak camera-frames/s", "peak_camera_fps", ">=", 500.0, "H100")],
}
TARGET_RATE_HZ = 30.0  # the rate DESIGN.md states the latency target at
T0_NS = 1_700_000_000_000_000_000  # first stamp of the in-process path (the synthetic world's)


# ---- in-process path -------------------------------------------------------------------------------------------------
def run_inprocess(args: argparse.Namespace, sets: list, cameras: list) -> dict[str, Any]:
    """Back-to-back sets through the pipeline and the per-camera trackers; per-set wall times."""
    from depthtracker.configio import load_config
    from depthtracker.perception import PerceptionConfig, PerceptionPipeline
    from depthtracker.tracking import MultiObjectTracker, TrackerConfig
    from depthtracker.tracking.fusion import TrackView, concat_tracks, with_depths
    from depthtracker.types import Detections, Frame

    pipe = PerceptionPipeline.from_config(PerceptionConfig(depth_checkpoint=args.depth_checkpoint,
                                                           detector_checkpoint=args.detector_checkpoint,
                                                           device=args.device,
                                                           model_concurrency=args.model_concurrency))
    sync = None
    if pipe.device.startswith("cuda"):
        import torch

        sync = torch.cuda.synchronize  # outputs are NumPy already; this only makes the end of a set explicit
    tcfg = load_config(TrackerConfig, name="tracking")
    trackers = [MultiObjectTracker(tcfg, camera_id=c.camera_id) for c in cameras]
    views = [TrackView() for _ in cameras]
    order = ping_pong(len(sets))
    dt_ns = round(1e9 / args.rate)

    def one(k: int) -> tuple[float, float, dict[str, float]]:
        stamp = T0_NS + k * dt_ns
        images = sets[order[k % len(order)]]
        frames = [Frame(im, c.camera_id, stamp, c.frame_id) for im, c in zip(images, cameras)]
        t0 = time.perf_counter()
        res = pipe.process(frames, cameras)
        t1 = time.perf_counter()
        for i, c in enumerate(cameras):
            dets = res.detections[i] if res.detections is not None else Detections.empty(c.camera_id, stamp)
            trackers[i].update(dets)
            depth = res.depths[i].depth if res.depths is not None else None
            views[i].step(with_depths(concat_tracks([trackers[i].tracks], c.camera_id, stamp), depth))
        if sync is not None:
            sync()
        t2 = time.perf_counter()
        return 1e3 * (t2 - t0), 1e3 * (t2 - t1), res.timings_ms

    k = 0
    end = time.perf_counter() + args.warmup
    while args.warmup > 0 and (k == 0 or time.perf_counter() < end):
        one(k)
        k += 1
    warm = k
    total, track, stages = [], [], {"depth": [], "detect": []}
    start = time.perf_counter()
    end = start + args.duration
    while (len(total) < args.sets) if args.sets else (not total or time.perf_counter() < end):
        t, tr, tm = one(k)
        k += 1
        total.append(t)
        track.append(tr)
        for name in stages:
            if name in tm:
                stages[name].append(tm[name])
    wall = time.perf_counter() - start
    sets_per_s = len(total) / wall
    run = {"kind": "back_to_back", "warmup_sets": warm, "sets": len(total), "wall_s": wall, "sets_per_s": sets_per_s,
           "camera_frames_per_s": sets_per_s * len(cameras), "per_set_ms": stats_ms(total),
           "tracking_ms": stats_ms(track), "stage_ms": {n: stats_ms(v) for n, v in stages.items() if v}}
    return {"device": pipe.device, "checkpoints": pipe.checkpoints, "model_concurrency": pipe.concurrency,
            "runs": [run],
            "summary": {"peak_sets_per_s": sets_per_s, "peak_camera_fps": sets_per_s * len(cameras),
                        "peak_bound": "compute (back to back)", "latency_rate_hz": None,
                        "latency_p50_ms": run["per_set_ms"]["p50"], "latency_p99_ms": run["per_set_ms"]["p99"],
                        "latency_drop_fraction": 0.0, "latency_note": "per-set wall time, back to back"}}


# ---- report ------------------------------------------------------------------------------------------------------
def target_line(t: dict) -> str:
    """One verdict of ``verdicts`` as the report prints it; a value that rounds to the target shows more digits, so
    the side of the target it falls on shows (a peak of 14.9996 sets/s is not 15.00)."""
    value = fmt(t["value"], ".2f")
    if t["value"] is not None and value == f"{t['target']:.2f}":
        value = f"{t['value']:.4f}"
    return f"target {t['what']}: {value} (target {t['op']} {t['target']:g}) {t['verdict']}  [{'; '.join(t['notes'])}]"


def verdicts(args: argparse.Namespace, summary: dict, device: str) -> list[dict]:
    out = []
    for what, key, op, target, where in TARGETS.get((args.cameras, args.width, args.height), []):
        value = summary.get(key)
        passed = value is not None and (value >= target if op == ">=" else value <= target)
        verdict = "PASS" if passed else "MISS"
        notes = [f"target stated for: {where}"]
        if key == "peak_camera_fps" and summary.get("peak_bound") == "not searched":
            verdict = "NOT RUN"
        if key == "latency_p99_ms" and args.path == "ros" and args.rate != TARGET_RATE_HZ:
            notes.append(f"measured at {args.rate:g} Hz, not {TARGET_RATE_HZ:g} Hz")
        if where == "H100" and not device.startswith("cuda"):
            notes.append(f"measured on {device}, not the target's GPU")
        if args.depth_checkpoint == "none":
            notes.append("depth model off: not the target configuration")
        if args.path == "inprocess":
            notes.append("in-process: sets back to back, no ROS transport")
        if args.path == "ros" and key == "latency_p99_ms" and not summary.get("latency_sustained", True):
            notes.append(f"{args.rate:g} Hz not sustained")
        if key == "peak_camera_fps" and summary.get("peak_bound") == "loader":
            notes.append("loader-bound: a lower bound")
        out.append({"what": what, "value": value, "op": op, "target": target,
                    "verdict": verdict, "notes": notes})
    return out


def print_report(report: dict) -> None:
    s, st = report["summary"], report["settings"]
    print(f"machine: {report['machine']['summary']}; torch {report['machine']['torch']}, "
          f"{report['machine']['torch_threads']} threads; gpu: {report['machine']['gpu'] or 'none'}")
    print(f"date: {report['date']}; 1-min load before / after: {report['load_before']:.2f} / "
          f"{report['load_after']:.2f} (other processes on the same cores lower the figures)")
    print(f"path: {st['path']}; {st['cameras']} x {st['width']}x{st['height']}; device {report['device']}; "
          f"depth={report['checkpoints']['depth']}; detector={report['checkpoints']['detector']}; "
          f"models {report.get('model_concurrency', 'sequential')}")
    if st["path"] == "inprocess":
        r = report["runs"][0]
        print(f"{r['sets']} sets back to back after {r['warmup_sets']} warm-up sets in {r['wall_s']:.2f} s")
        print(f"{'':22s}{'p50':>9s}{'p90':>9s}{'p99':>9s}{'max':>9s}  ms")
        rows = [("per set (total)", r["per_set_ms"]), ("  tracking", r["tracking_ms"])]
        rows += [(f"  {n} (model)", v) for n, v in r["stage_ms"].items()]
        for name, v in rows:
            print(f"{name:22s}" + "".join(f"{fmt(v[q], '.2f'):>9s}" for q in ("p50", "p90", "p99", "max")))
    else:
        starts = report["graph_starts"]
        restarted = f" (graph started {starts} times after discovery stalls)" if starts > 1 else ""
        print(f"startup (models loaded, first tracks back): {report['startup_s']:.1f} s{restarted}; each run: "
              f"{st['warmup_s']:g} s warm-up + {st['duration_s']:g} s counted + up to {st['drain_s']:g} s drain")
        print(f"{'run':9s}{'asked Hz':>9s}{'sent Hz':>9s}{'sent':>6s}{'drop':>7s}{'out Hz':>8s}{'p50 ms':>8s}"
              f"{'p90 ms':>8s}{'p99 ms':>8s}{'max ms':>8s}{'node drop':>10s}{'missed':>8s}")
        for r in report["runs"]:
            lat, pd = r["latency_ms"], r["node_diagnostics"]["perception_delta"]
            nd, nm = pd.get("dropped_sets", "-"), pd.get("images_missed", "-")
            print(f"{r['kind']:9s}{r['requested_hz']:9.2f}{r['achieved_input_hz']:9.2f}{r['sent']:6d}"
                  f"{r['drop_fraction']:7.1%}{r['output_hz']:8.2f}" + "".join(
                      f"{fmt(lat[q]):>8s}" for q in ("p50", "p90", "p99", "max")) + f"{nd!s:>10s}{nm!s:>8s}"
                  + ("  loader-bound" if r["loader_bound"] else ""))
    n = st["cameras"]
    peak = s["peak_sets_per_s"]
    if st["path"] == "inprocess":
        print(f"throughput: {peak:.2f} sets/s = {peak * n:.1f} camera-frames/s (back to back, no ROS transport)")
    elif st["no_peak"]:
        print("peak: not searched (--no-peak)")
    else:
        print(f"peak: {fmt(peak, '.2f')} sets/s = {fmt(peak * n if peak else None, '.1f')} camera-frames/s "
              f"(bound: {s['peak_bound']}; highest input rate with <= {st['drop_limit']:.0%} dropped)")
    rate = f" at {s['latency_rate_hz']:g} Hz" if s["latency_rate_hz"] else ""
    print(f"latency{rate}: p50 {fmt(s['latency_p50_ms'], '.2f')} ms, p99 {fmt(s['latency_p99_ms'], '.2f')} ms "
          f"({s['latency_note']}; dropped {s['latency_drop_fraction']:.1%})")
    if s.get("latency_at_peak"):
        a = s["latency_at_peak"]
        print(f"latency at the peak rate {a['rate_hz']:.2f} Hz: p50 {fmt(a['p50'], '.2f')} ms, p99 "
              f"{fmt(a['p99'], '.2f')} ms (dropped {a['drop_fraction']:.1%})")
    for t in report["targets"]:
        print(target_line(t))
    if not report["targets"]:
        print("target: none stated in DESIGN.md for this rig size")


# ---- CLI ---------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--path", choices=("ros", "inprocess"), default="ros")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="rig and device of a DESIGN.md target (flags given explicitly win)")
    p.add_argument("--cameras", type=int, default=None, help="cameras in the rig (default 1)")
    p.add_argument("--width", type=int, default=None, help="image width, px (default 320)")
    p.add_argument("--height", type=int, default=None, help="image height, px (default 240)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="perception device (default auto)")
    p.add_argument("--depth-checkpoint", default="", metavar="PATH",
                   help="DepthTrack safetensors; default the shipped models/depthtrack-edge; none = no depth")
    p.add_argument("--detector-checkpoint", default="", metavar="PATH",
                   help="HSV-DET safetensors; default the shipped models/hsvdet-n; none = no detector (inprocess only)")
    p.add_argument("--model-concurrency", choices=("auto", "parallel", "sequential"), default="auto",
                   help="perception: detector beside depth in a worker thread, or one after the other (default auto)")
    p.add_argument("--rate", type=float, default=30.0,
                   help="ros: rate of the latency run, sets/s; inprocess: stamp spacing 1/rate (default 30)")
    p.add_argument("--duration", type=float, default=10.0, help="counted seconds per run (default 10)")
    p.add_argument("--warmup", type=float, default=3.0, help="uncounted seconds before each run (default 3)")
    p.add_argument("--drain", type=float, default=2.0, help="ros: wait for answers after a run, s (default 2)")
    p.add_argument("--sets", type=int, default=0, help="inprocess: count this many sets instead of --duration")
    p.add_argument("--no-peak", action="store_true", help="ros: skip the peak search (latency run only)")
    p.add_argument("--start-rate", type=float, default=5.0, help="ros: first rate of the peak search, sets/s")
    p.add_argument("--min-rate", type=float, default=0.5, help="ros: lowest rate the search tries, sets/s")
    p.add_argument("--max-rate", type=float, default=2000.0, help="ros: highest rate the search tries, sets/s")
    p.add_argument("--bisect-steps", type=int, default=3, help="ros: bisections after the first failing rate")
    p.add_argument("--drop-limit", type=float, default=0.05, help="largest dropped share of a passing run")
    p.add_argument("--loop-sets", type=int, default=30, help="distinct sets rendered (played forwards, backwards)")
    p.add_argument("--seed", type=int, default=0, help="synthetic world seed")
    p.add_argument("--domain-id", type=int, default=None, help="ros: ROS_DOMAIN_ID (default random in 100..200)")
    p.add_argument("--startup-timeout", type=float, default=180.0, help="ros: wait for the graph's first answer, s")
    p.add_argument("--discovery-timeout", type=float, default=30.0,
                   help="ros: a node running this long unseen by the loader is a discovery stall: start again, s")
    p.add_argument("--startup-attempts", type=int, default=3, help="ros: starts of the graph after stalls (>= 1)")
    p.add_argument("--keep-logs", type=Path, default=None, metavar="DIR", help="ros: keep node logs in DIR")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.json", help="write every number here")
    args = p.parse_args(argv)
    cams, w, h, dev = PRESETS.get(args.preset, (1, 320, 240, "auto"))
    args.cameras = cams if args.cameras is None else args.cameras
    args.width, args.height = (w if args.width is None else args.width), (h if args.height is None else args.height)
    args.device = dev if args.device is None else args.device
    if args.cameras < 1 or args.width < 16 or args.height < 16:
        p.error("--cameras must be >= 1 and --width, --height >= 16")
    if min(args.rate, args.duration, args.start_rate, args.min_rate) <= 0 or args.warmup < 0 or args.drain < 0:
        p.error("--rate, --duration, --start-rate, --min-rate must be > 0; --warmup, --drain >= 0")
    if args.discovery_timeout <= 0 or args.startup_attempts < 1:
        p.error("--discovery-timeout must be > 0 and --startup-attempts >= 1")
    if not 0 <= args.drop_limit < 1 or args.loop_sets < 1 or args.sets < 0 or args.bisect_steps < 0:
        p.error("--drop-limit in [0, 1), --loop-sets >= 1, --sets >= 0, --bisect-steps >= 0")
    for kind in ("depth", "detector"):
        name = f"{kind}_checkpoint"
        try:
            path = resolve_checkpoint(getattr(args, name), kind)
        except FileNotFoundError as exc:
            p.error(f"--{kind}-checkpoint: {exc}")
        setattr(args, name, str(path.resolve()) if path is not None else "none")
    if args.path == "ros" and args.detector_checkpoint == "none":
        p.error("--path ros needs the detector: tracks are made from detections (use --path inprocess)")
    if args.domain_id is None:
        args.domain_id = random.randint(100, 200)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from depthtracker.machine import machine_info

    load_before = os.getloadavg()[0]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sets, cameras = render_sets(args.cameras, args.width, args.height, args.loop_sets, args.seed)
    if args.path == "inprocess":
        result = run_inprocess(args, sets, cameras)
    else:
        from graph_ros import run_ros  # imported here: the in-process path must not need it

        workdir = Path(tempfile.mkdtemp(prefix="graph-bench-"))
        try:
            result = run_ros(args, sets, cameras, workdir)
        except BaseException:
            print(f"node logs kept in {workdir}", file=sys.stderr)
            raise
        if args.keep_logs is not None:
            shutil.copytree(workdir, args.keep_logs, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    info = machine_info()
    gpu = None
    if info.get("cuda"):
        import torch

        gpu = torch.cuda.get_device_name(0)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings.update(duration_s=args.duration, warmup_s=args.warmup, drain_s=args.drain)
    report = {"benchmark": "bench/graph.py", "date": date, "load_before": load_before,
              "load_after": os.getloadavg()[0], "machine": {"summary": machine(), **info, "gpu": gpu},
              "settings": settings, **result}
    report["targets"] = verdicts(args, result["summary"], str(result["device"]))
    print_report(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.out}")
    return 1 if any(t["verdict"] == "MISS" for t in report["targets"]) else 0


if __name__ == "__main__":
    sys.exit(main())
