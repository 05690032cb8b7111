"""``depthtracker demo``: the product on the embedded synthetic world, end to end as far as it is built.

Now: render the default world into a bag (if absent), read it back and write what a person looks at first — a
contact sheet (PNG) and a video (MP4) of every camera with its depth colour map and ground-truth boxes with ids.
Later stages (models, tracking, the ROS graph, evaluation) extend this function.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from depthtracker.configio import load_config
from depthtracker.data.bags import BagReader, BagSample
from depthtracker.data.synth import SynthConfig
from depthtracker.data.synth_bag import write_synth_bag
from depthtracker.viz import VideoWriter, colorize_depth, draw_boxes, mosaic
from depthtracker.viz.draw import caption


@dataclasses.dataclass(frozen=True)
class DemoResult:
    bag: Path
    contact_sheet: Path
    video: Path
    sets: int
    cameras: int
    seconds_total: float


def camera_tiles(sample: BagSample, class_names: tuple[str, ...]) -> list[np.ndarray]:
    """Per camera: RGB with ground-truth boxes above its depth colour map."""
    tiles = []
    for frame, depth, ann in zip(sample.frames, sample.depths, sample.annotations):
        rgb = frame.image
        if ann is not None and len(ann):
            names = [class_names[int(c)] if int(c) < len(class_names) else str(int(c)) for c in ann.labels]
            rgb = draw_boxes(rgb, ann.boxes, ann.ids, names)
        rgb = caption(rgb, f"cam{frame.camera_id}")
        dep = colorize_depth(depth.depth) if depth is not None else np.zeros_like(rgb)
        tiles.append(np.concatenate([rgb, dep], axis=0))
    return tiles


def run_demo(
    out: str | Path = "out/demo",
    seconds: float = 4.0,
    storage: str = "mcap",
    log: Callable[[str], None] = print,
    config: SynthConfig | None = None,
) -> DemoResult:
    """Run the demo into ``out``: ``world/`` (bag), ``contact_sheet.png``, ``cameras.mp4``.

    The world is ``config/synth.yaml`` shortened to ``seconds`` unless ``config`` is given.
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bag_path = out / "world"
    if not bag_path.exists():
        if config is None:
            config = dataclasses.replace(load_config(SynthConfig, name="synth"), seconds=seconds)
        log(f"demo: rendering the synthetic world ({config.cameras} cameras, {config.width}x{config.height}, "
            f"{config.seconds:g} s at {config.fps:g} Hz) into {bag_path}")
        write_synth_bag(config, bag_path, storage=storage)
    else:
        log(f"demo: using the existing bag {bag_path} (delete it to render again)")

    sheet_path, video_path = out / "contact_sheet.png", out / "cameras.mp4"
    with BagReader(bag_path) as bag:
        n_sets = bag.num_sets
        # Contact sheet: four moments spread over the sequence, all cameras side by side.
        picks = set(np.linspace(0, max(n_sets - 1, 0), num=min(4, n_sets)).round().astype(int).tolist())
        rows: list[list[np.ndarray]] = []
        fps = float((bag.source or {}).get("synth", {}).get("fps", 15.0))
        with VideoWriter(video_path, fps=fps) as video:
            for i, sample in enumerate(bag.samples()):
                tiles = camera_tiles(sample, bag.class_names)
                frame = mosaic([tiles])
                video.write(frame)
                if i in picks:
                    t = (sample.stamp_ns - bag.start_time_ns) / 1e9
                    rows.append([caption(tiles[0], f"cam0  t={t:.2f}s"), *tiles[1:]])
            written = video.frames
        sheet = mosaic(rows)
        scale = min(1.0, 2400 / sheet.shape[1])
        if scale < 1.0:
            sheet = cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if not cv2.imwrite(str(sheet_path), sheet[:, :, ::-1]):
            raise OSError(f"cannot write {sheet_path}")
        cameras = len(bag.camera_ids)
    result = DemoResult(bag_path, sheet_path, video_path, written, cameras, time.perf_counter() - t0)
    log(f"demo: {written} sets x {cameras} cameras -> {sheet_path}, {video_path} ({result.seconds_total:.1f} s)")
    return result
