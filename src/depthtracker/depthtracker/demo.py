"""``depthtracker demo``: the product on the embedded synthetic world, end to end.

1. render the default world (``config/synth.yaml``, shortened to ``seconds``) into a bag — ``OUT/world/``;
2. run the perception graph on it: by default through ROS (``path="graph"``: the perception and tracking nodes as
   processes, the bag played into them, a target request for the longest visible object run; what they publish is
   collected — ``ros.eval_graph``), or the same computation in this process (``path="in-process"``, for machines
   without ROS);
3. score the outputs against the world's ground truth (``eval.replay.score_outputs``: depth AbsRel/RMSE/δ1/MAE/PSNR,
   detection mAP, HOTA/MOTA/IDF1, single-target success AUC) into ``report.json`` / ``report.md`` with plots
   (``plots.png``: target IoU per frame, depth error per image);
4. write ``cameras.mp4`` and ``contact_sheet.png`` (per camera: tracks with ids and the target in white, predicted
   depth heatmap, ground-truth depth) and ``annotated/`` (an mcap rosbag2 that opens in Foxglove Studio:
   annotated images, depth heatmaps and colour maps, camera infos, tracks).

On a CPU the graph cannot keep up with the world's frame rate; ``rate`` (default: 1 on CUDA, else the rate at which
the CPU keeps up, measured on the first set) slows the playback, and ``coverage`` in the report says how many sets
were answered either way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthtracker.configio import load_config
from depthtracker.data.bags import BagReader
from depthtracker.data.synth import SynthConfig
from depthtracker.data.synth_bag import write_synth_bag
from depthtracker.eval.replay import GraphOutputs, ReplayConfig, TargetPlan, plan_target, score_outputs
from depthtracker.geometry.boxes import box_median_depth
from depthtracker.viz import VideoWriter, colorize_depth, draw_boxes, mosaic
from depthtracker.viz.draw import caption

PATHS = ("graph", "in-process")


@dataclasses.dataclass(frozen=True)
class DemoResult:
    bag: Path
    contact_sheet: Path
    video: Path
    report: Path
    annotated: Path
    sets: int
    cameras: int
    metrics: dict
    seconds_total: float


def ensure_world(out: Path, seconds: float, storage: str, config: SynthConfig | None,
                 log: Callable[[str], None]) -> Path:
    bag_path = out / "world"
    if bag_path.exists():
        log(f"demo: using the existing bag {bag_path} (delete it to render again)")
        return bag_path
    if config is None:
        config = dataclasses.replace(load_config(SynthConfig, name="synth"), seconds=seconds)
    log(f"demo: rendering the synthetic world ({config.cameras} cameras, {config.width}x{config.height}, "
        f"{config.seconds:g} s at {config.fps:g} Hz) into {bag_path}")
    return write_synth_bag(config, bag_path, storage=storage)


def _pipeline(depth_checkpoint: str, detector_checkpoint: str, device: str) -> Any:
    from depthtracker.eval.replay import load_perception_config
    from depthtracker.perception import PerceptionPipeline

    cfg = dataclasses.replace(load_perception_config(), device=device, depth_checkpoint=depth_checkpoint,
                              detector_checkpoint=detector_checkpoint)
    return PerceptionPipeline.from_config(cfg)


def _auto_rate(bag: Path, depth_checkpoint: str, detector_checkpoint: str, device: str,
               log: Callable[[str], None]) -> float:
    """1 on CUDA; else the playback factor at which this machine keeps up (time of a second set, +50 %)."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return 1.0
    pipe = _pipeline(depth_checkpoint, detector_checkpoint, "cpu")
    with BagReader(bag) as reader:
        cams, fps = reader.cameras, float((reader.source or {}).get("synth", {}).get("fps", 15.0))
        samples = reader.samples()
        pipe.process(next(samples).frames, cams)  # warm-up
        t = time.perf_counter()
        pipe.process(next(samples).frames, cams)
        per_set = time.perf_counter() - t
    rate = min(1.0, 1.0 / (1.5 * per_set * fps))
    log(f"demo: one set takes {1e3 * per_set:.0f} ms here; playing at {rate:.3f}x real time so the graph keeps up")
    return rate


def run_demo(
    out: str | Path = "out/demo",
    seconds: float = 4.0,
    storage: str = "mcap",
    log: Callable[[str], None] = print,
    config: SynthConfig | None = None,
    path: str = "graph",
    rate: float | None = None,
    depth_checkpoint: str = "",
    detector_checkpoint: str = "",
    device: str = "auto",
    env: dict[str, str] | None = None,
) -> DemoResult:
    """Run the demo into ``out`` (see the module docstring). Checkpoints: ``""`` = shipped, ``"none"`` = off."""
    if path not in PATHS:
        raise ValueError(f"demo path must be one of {PATHS}, got {path!r}")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bag = ensure_world(out, seconds, storage, config, log)
    replay = ReplayConfig()
    # the single target needs the tracking model (DepthTrack): without it no target is set, and none is scored
    plan = plan_target(bag, replay) if depth_checkpoint.strip().lower() != "none" else None
    if path == "graph":
        try:
            from depthtracker.ros.eval_graph import GraphEvalConfig, collect_graph_outputs
        except ImportError as exc:
            raise ValueError(f"the demo through the ROS graph needs the ROS 2 Python packages ({exc}); run make "
                             "setup, or use --in-process") from exc
        if rate is None:
            rate = _auto_rate(bag, depth_checkpoint, detector_checkpoint, device, log)
        params = tuple(f"perception:{k}={v}" for k, v in (("depth_checkpoint", depth_checkpoint),
                                                          ("detector_checkpoint", detector_checkpoint)) if v)
        log(f"demo: perception + tracking nodes, bag played at {rate:.3f}x, target: "
            f"{'none' if plan is None else f'camera {plan.camera_id} object {plan.object_id}'}")
        import collections

        tail: collections.deque[str] = collections.deque(maxlen=40)  # the graph's output, shown if it fails
        try:
            outputs = collect_graph_outputs(bag, plan, GraphEvalConfig(rate=rate, device=device, set_params=params),
                                            log=tail.append, env=env)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}; the graph's last lines:\n" + "\n".join(tail)) from exc
    else:
        from depthtracker.eval.replay import run_in_process

        log("demo: the graph's computation in this process (no ROS)")
        outputs = run_in_process(bag, _pipeline(depth_checkpoint, detector_checkpoint, device), plan, config=replay)
    report = score_outputs(bag, outputs, plan, replay)
    from depthtracker.perception import resolve_checkpoint

    report["bag"] = str(bag)
    report["models"] = {kind: str(resolve_checkpoint(value, kind) or "none")
                        for kind, value in (("depth", depth_checkpoint), ("detector", detector_checkpoint))}
    sheet, video, annotated, sets, cams = _render(out, bag, outputs, plan)
    plots = _plots(out, bag, outputs, plan)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")
    (out / "report.md").write_text(_markdown(report, plots))
    d, det, m, s, c = (report[k] for k in ("depth", "det", "mot", "sot", "coverage"))
    log(f"demo: {c['sets_answered']}/{c['sets']} sets answered ({report['path'].get('path')}) -> {sheet}, {video}, "
        f"{annotated}, {out / 'report.md'}")
    log(f"demo: depth AbsRel {d['abs_rel']:.3f}, delta1 {d['delta1']:.3f}; detection mAP50 {det.get('map50', 0):.3f}; "
        f"tracking HOTA {m['mean']['HOTA']:.3f}, IDF1 {m['mean']['IDF1']:.3f}; target AUC {s['success_auc']:.3f}")
    return DemoResult(bag, sheet, video, out / "report.json", annotated, sets, cams, report,
                      time.perf_counter() - t0)


def _tiles(sample: Any, outputs: GraphOutputs, names: tuple[str, ...], scale: float) -> tuple[list, list]:
    """Per camera: the tile column for the video, and the annotated image + tracks for the mcap."""
    cols, ann = [], []
    for f, gt in zip(sample.frames, sample.depths):
        key = (f.stamp_ns, f.camera_id)
        ids, boxes, labels = outputs.tracks.get(key, (np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64)))
        depth = outputs.depths.get(key)
        labels_txt = [f"{names[int(c)] if 0 <= int(c) < len(names) else c}" for c in labels]
        img = draw_boxes(f.image, boxes, ids & 0xFFFFFFFF, labels_txt)
        target = outputs.target.get(f.stamp_ns)
        rows = [(int(i), b, int(c), math.nan, False) for i, b, c in zip(ids, boxes, labels)]
        if depth is not None and len(rows):
            med = box_median_depth(depth, np.asarray(boxes, np.float32))
            rows = [(i, b, c, float(m), t) for (i, b, c, _, t), m in zip(rows, med)]
        if target is not None and f.camera_id == outputs.info.get("target_camera", -1):
            x1, y1, x2, y2 = (int(round(v)) for v in target)
            img = cv2.rectangle(img.copy(), (x1, y1), (x2, y2), (255, 255, 255), 3)
            img = cv2.putText(img, "target", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
            rows.append((int(f.camera_id) << 32, target, -1, math.nan, True))
        color = colorize_depth(depth) if depth is not None else np.zeros_like(f.image)
        gt_color = colorize_depth(gt.depth) if gt is not None else np.zeros_like(f.image)
        ann.append((f, img, depth, color, rows))
        tiles = [caption(img, f"cam{f.camera_id} tracks"), caption(color, "depth (graph)"),
                 caption(gt_color, "depth (ground truth)")]
        col = np.concatenate(tiles, axis=0)
        if scale != 1.0:
            col = cv2.resize(col, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cols.append(col)
    return cols, ann


def _render(out: Path, bag: Path, outputs: GraphOutputs, plan: TargetPlan | None) -> tuple[Path, Path, Path, int, int]:
    from depthtracker.viz.annotated_bag import AnnotatedBag

    if plan is not None:
        outputs.info["target_camera"] = plan.camera_id
    sheet_path, video_path, annotated = out / "contact_sheet.png", out / "cameras.mp4", out / "annotated"
    rows: list[list[np.ndarray]] = []
    with BagReader(bag) as reader:
        n, cams, names = reader.num_sets, reader.cameras, reader.class_names
        fps = float((reader.source or {}).get("synth", {}).get("fps", 15.0))
        scale = 0.5 if cams[0].width >= 640 else 1.0
        picks = set(np.linspace(0, max(n - 1, 0), num=min(4, n)).round().astype(int).tolist())
        with VideoWriter(video_path, fps=fps) as video, AnnotatedBag(annotated, cams) as abag:
            for i, s in enumerate(reader.samples()):
                cols, ann = _tiles(s, outputs, names, scale)
                video.write(mosaic([cols]))
                for f, img, depth, color, tracks in ann:
                    abag.write(f.stamp_ns, f.camera_id, img, depth, color, tracks)
                if i in picks:
                    rows.append(cols)
            written = video.frames
    sheet = mosaic(rows)
    if not cv2.imwrite(str(sheet_path), sheet[:, :, ::-1]):
        raise OSError(f"cannot write {sheet_path}")
    return sheet_path, video_path, annotated, written, len(cams)


def _plots(out: Path, bag: Path, outputs: GraphOutputs, plan: TargetPlan | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from depthtracker.eval.metrics import depth_metrics

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5))
    if plan is not None:
        from depthtracker.eval.depthtrack import box_ious

        pred = np.stack([outputs.target.get(s, plan.start_box) for s in plan.stamps])
        a.plot(range(len(plan.stamps)), box_ious(pred, plan.boxes), marker="o")
        a.set_ylim(0, 1.05)
    a.set(title="single target: IoU with ground truth", xlabel="frame of the run", ylabel="IoU")
    rel: dict[int, list[float]] = {}
    with BagReader(bag) as reader:
        for s in reader.samples():
            for f, gt in zip(s.frames, s.depths):
                pred = outputs.depths.get((f.stamp_ns, f.camera_id))
                if pred is not None and gt is not None:
                    rel.setdefault(f.camera_id, []).append(depth_metrics(pred, gt.depth)["abs_rel"])
    for cam, values in sorted(rel.items()):
        b.plot(values, label=f"cam{cam}")
    b.set(title="depth AbsRel per image", xlabel="set", ylabel="AbsRel")
    if rel:
        b.legend()
    fig.tight_layout()
    fig.savefig(out / "plots.png", dpi=100)
    plt.close(fig)
    return ["plots.png"]


def _markdown(report: dict[str, Any], plots: list[str]) -> str:
    from depthtracker.eval.replay import report_lines

    return "\n".join(report_lines(report, "depthtracker demo") + ["", *[f"![{p}]({p})" for p in plots]]) + "\n"
