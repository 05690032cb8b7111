"""Bag -> training batches (DESIGN.md §7: >= 1000 frames/s at 640x480 from mcap on 2 cores).

Usage: ``.venv/bin/python bench/data.py [--seconds 4] [--batch-size 16] [--image-size 480 640]``

Renders a 4-camera 640x480 synthetic bag into a temporary folder, then times, in one process:
* baseline: raw ``rosbags`` read + CDR deserialisation of every ``/camN/image_raw`` message;
* ``DetectionDataset`` construction (one pass over the bag: decode, letterbox, cache) in frames/s;
* batches from a built dataset through a ``DataLoader`` (single process, shuffled), float32 and uint8 collation.
A frame is one camera image. Ratios are against the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import tempfile
import time
from pathlib import Path

import torch
from _machine import machine  # bench/ is on sys.path when a script here runs
from depthtracker.data.bags import typestore
from depthtracker.data.datasets import DetectionDataConfig, DetectionDataset, collate_detections
from depthtracker.data.synth import SynthConfig
from depthtracker.data.synth_bag import write_synth_bag
from rosbags.rosbag2 import Reader
from torch.utils.data import DataLoader


def raw_read(bag: Path) -> tuple[int, float]:
    store = typestore()
    t = time.perf_counter()
    n = 0
    with Reader(bag) as r:
        conns = [c for c in r.connections if c.topic.endswith("/image_raw")]
        for conn, _, raw in r.messages(connections=conns):
            store.deserialize_cdr(raw, conn.msgtype)
            n += 1
    return n, time.perf_counter() - t


def batches(ds: DetectionDataset, batch_size: int, as_uint8: bool) -> tuple[int, float]:
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0,
                        collate_fn=functools.partial(collate_detections, as_uint8=as_uint8),
                        generator=torch.Generator().manual_seed(0))
    t = time.perf_counter()
    n = 0
    for batch in loader:
        n += batch.images.shape[0]
    return n, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0, help="bag length at 15 fps, 4 cameras (default 4)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"),
                   help="network input (default 480 640: no resize, as in the target)")
    args = p.parse_args(argv)
    print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    with tempfile.TemporaryDirectory() as tmp:
        bag = write_synth_bag(SynthConfig(seconds=args.seconds), Path(tmp) / "bag", progress=False)
        n, s = raw_read(bag)
        base = n / s
        print(f"baseline  raw rosbags read + deserialise: {n} frames in {s:.2f} s = {base:.0f} frames/s")
        cfg = DetectionDataConfig(image_size=tuple(args.image_size))
        t = time.perf_counter()
        ds = DetectionDataset(bags=[bag], config=cfg)
        s = time.perf_counter() - t
        print(f"dataset   build (decode, letterbox, cache):  {len(ds)} frames in {s:.2f} s = {len(ds) / s:.0f} "
              f"frames/s ({len(ds) / s / base:.2f}x baseline)")
        rows = []
        for as_uint8 in (False, True):
            batches(ds, args.batch_size, as_uint8)  # warm-up: first touch of the cache pages
            n, s = batches(ds, args.batch_size, as_uint8)
            rows.append((as_uint8, n / s))
            print(f"batches   {'uint8  ' if as_uint8 else 'float32'} B={args.batch_size}: {n} frames in {s:.2f} s = "
                  f"{n / s:.0f} frames/s ({n / s / base:.2f}x baseline)")
    best = max(r[1] for r in rows)
    print(f"target >= 1000 frames/s of batches: {'PASS' if best >= 1000 else 'MISS'} (best {best:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
