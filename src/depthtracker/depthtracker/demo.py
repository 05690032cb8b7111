"""``depthtracker demo``: the product on the embedded synthetic world, end to end as far as it is built.

Stages now:
1. render the default world into a bag (if absent) — ``world/``;
2. read it back; detect every set of cameras in one forward pass of the shipped detector (``models/hsvdet-n``, via
   ``HSVDetPredictor``) or, when no checkpoint is found, with the stand-in detector (``eval.simulate``: ground truth
   + seeded noise, labelled ``simulated`` in the report); score the detections (COCO mAP, ``det``); per camera,
   track with ``MultiObjectTracker`` and score the tracks against ground truth (HOTA, MOTA, IDF1);
3. write ``contact_sheet.png`` and ``cameras.mp4`` (per camera: RGB with ground-truth boxes, RGB with tracks, depth
   colour map) and ``report.json`` / ``report.md``.
Later stages (models, the ROS graph) extend this function.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from depthtracker.configio import load_config
from depthtracker.data.bags import BagReader, BagSample
from depthtracker.data.synth import SynthConfig
from depthtracker.data.synth_bag import write_synth_bag
from depthtracker.eval.hsvdet import HSVDetEvalConfig, filter_ground_truth
from depthtracker.eval.metrics import det_metrics, mot_metrics
from depthtracker.eval.simulate import DetectionNoise, simulate_detections
from depthtracker.tracking import MultiObjectTracker, TrackerConfig
from depthtracker.types import Tracks
from depthtracker.viz import VideoWriter, colorize_depth, draw_boxes, mosaic
from depthtracker.viz.draw import caption

MOT_KEYS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")
DET_KEYS = ("map50", "map50_95", "ap_small")
DEFAULT_DETECTOR = Path("models") / "hsvdet-n.safetensors"  # shipped checkpoint, relative to the repository root


def find_detector() -> Path | None:
    """The shipped detector checkpoint: ``models/hsvdet-n.safetensors`` under the working directory, else under the
    source checkout this package runs from (editable installs); None when neither exists."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (root / DEFAULT_DETECTOR).is_file():
            return root / DEFAULT_DETECTOR
    return None


@dataclasses.dataclass(frozen=True)
class DemoResult:
    bag: Path
    contact_sheet: Path
    video: Path
    report: Path
    sets: int
    cameras: int
    metrics: dict
    seconds_total: float


def camera_tiles(sample: BagSample, tracks: list[Tracks], class_names: tuple[str, ...],
                 source: str = "simulated") -> list[np.ndarray]:
    """Per camera: RGB with ground-truth boxes, RGB with tracks, depth colour map (stacked vertically)."""

    def names(labels: np.ndarray) -> list[str]:
        return [class_names[int(c)] if int(c) < len(class_names) else str(int(c)) for c in labels]

    tiles = []
    for frame, depth, ann, trk in zip(sample.frames, sample.depths, sample.annotations, tracks, strict=True):
        gt = frame.image
        if ann is not None and len(ann):
            gt = draw_boxes(gt, ann.boxes, ann.ids, names(ann.labels))
        gt = caption(gt, f"cam{frame.camera_id} ground truth")
        # Track ids carry the camera in their upper bits; show the per-camera counter.
        tr = draw_boxes(frame.image, trk.boxes, trk.ids & 0xFFFFFFFF, names(trk.labels))
        tr = caption(tr, f"cam{frame.camera_id} tracks ({source} detections)")
        dep = colorize_depth(depth.depth) if depth is not None else np.zeros_like(gt)
        tiles.append(np.concatenate([gt, tr, caption(dep, "depth (ground truth)")], axis=0))
    return tiles


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


def run_demo(
    out: str | Path = "out/demo",
    seconds: float = 4.0,
    storage: str = "mcap",
    log: Callable[[str], None] = print,
    config: SynthConfig | None = None,
    seed: int = 0,
    detector: str | Path | None = "auto",
) -> DemoResult:
    """Run the demo into ``out``: ``world/`` (bag), ``contact_sheet.png``, ``cameras.mp4``, ``report.{json,md}``.

    The world is ``config/synth.yaml`` shortened to ``seconds`` unless ``config`` is given. ``detector``: an HSV-DET
    checkpoint, ``"auto"`` (the shipped ``models/hsvdet-n`` when present, else simulated detections) or None
    (simulated detections, drawn with ``seed``).
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bag_path = ensure_world(out, seconds, storage, config, log)
    tracker_config = load_config(TrackerConfig, name="tracking")
    noise = DetectionNoise()
    eval_cfg = HSVDetEvalConfig()
    ckpt = find_detector() if detector == "auto" else (Path(detector) if detector is not None else None)
    predictor = None
    if ckpt is not None:
        from depthtracker.models.hsvdet.predictor import HSVDetPredictor

        # one pass at the evaluation threshold serves mAP; the tracker ignores scores below its own low_score
        predictor = HSVDetPredictor.from_checkpoint(ckpt, score_threshold=eval_cfg.score_threshold)
    source = "simulated" if predictor is None else ckpt.stem
    log(f"demo: detections from {'the stand-in (simulated: ground truth + noise)' if predictor is None else ckpt}")
    det_gt: list = []
    det_pred: list = []
    sheet_path, video_path = out / "contact_sheet.png", out / "cameras.mp4"
    with BagReader(bag_path) as bag:
        n_sets, cams = bag.num_sets, bag.cameras
        noise = dataclasses.replace(noise, num_classes=max(1, len(bag.class_names)))
        trackers = [MultiObjectTracker(tracker_config, camera_id=c.camera_id) for c in cams]
        rng = np.random.default_rng(seed)
        gt_seq: list[dict] = [{} for _ in cams]
        hyp_seq: list[dict] = [{} for _ in cams]
        picks = set(np.linspace(0, max(n_sets - 1, 0), num=min(4, n_sets)).round().astype(int).tolist())
        rows: list[list[np.ndarray]] = []
        fps = float((bag.source or {}).get("synth", {}).get("fps", 15.0))
        with VideoWriter(video_path, fps=fps) as video:
            for i, sample in enumerate(bag.samples()):
                tracks = []
                if predictor is not None:
                    found = predictor.predict([f.image for f in sample.frames], [f.camera_id for f in sample.frames],
                                              [f.stamp_ns for f in sample.frames])
                else:
                    found = [simulate_detections(ann, cam.width, cam.height, rng, noise)
                             for cam, ann in zip(cams, sample.annotations, strict=True)]
                for k, (ann, dets) in enumerate(zip(sample.annotations, found, strict=True)):
                    det_gt.append(filter_ground_truth(ann, eval_cfg.min_visibility, eval_cfg.min_box_area))
                    det_pred.append((dets.boxes, dets.scores, dets.labels))
                    trk = trackers[k].update(dets)  # it ignores scores below its own low_score
                    tracks.append(trk)
                    gt_seq[k][i] = (ann.ids, ann.boxes)
                    hyp_seq[k][i] = (trk.ids, trk.boxes)
                tiles = camera_tiles(sample, tracks, bag.class_names, source)
                video.write(mosaic([tiles]))
                if i in picks:
                    t = (sample.stamp_ns - bag.start_time_ns) / 1e9
                    rows.append([caption(tiles[0], f"cam0 ground truth  t={t:.2f}s"), *tiles[1:]])
            written = video.frames
        sheet = mosaic(rows)
        scale = min(1.0, 2400 / sheet.shape[1])
        if scale < 1.0:
            sheet = cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if not cv2.imwrite(str(sheet_path), sheet[:, :, ::-1]):
            raise OSError(f"cannot write {sheet_path}")
        per_camera = {f"cam{c.camera_id}": mot_metrics(gt_seq[k], hyp_seq[k]) for k, c in enumerate(cams)}
        det = det_metrics(det_gt, det_pred, max(1, len(bag.class_names)), bag.class_names or None)
    mean = {key: float(np.mean([m[key] for m in per_camera.values()])) for key in MOT_KEYS}
    detections = ({"source": "simulated", "noise": dataclasses.asdict(noise), "seed": seed} if predictor is None else
                  {"source": source, "checkpoint": str(ckpt), "score_threshold": eval_cfg.score_threshold,
                   "tracker_min_score": tracker_config.low_score})
    metrics = {"mot": {"mean": mean, "per_camera": per_camera}, "detections": detections, "det": det}
    report = out / "report.json"
    report.write_text(json.dumps({"bag": str(bag_path), "sets": written, "cameras": len(cams), **metrics},
                                 indent=2, default=float))
    lines = ["# depthtracker demo report", "", f"Bag: `{bag_path}` — {written} sets × {len(cams)} cameras.", "",
             f"Detections: {_source_line(source)}. COCO detection AP over every camera image (ground truth visible "
             f">= {eval_cfg.min_visibility}): " + ", ".join(f"{k} {det[k]:.3f}" for k in DET_KEYS) + ".", "",
             f"Multi-object tracking on {'**simulated**' if predictor is None else source} detections:", "",
             "| camera | " + " | ".join(MOT_KEYS) + " |", "|---" * (len(MOT_KEYS) + 1) + "|"]
    for name, m in [*per_camera.items(), ("mean", mean)]:
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" if k != "IDSW" else f"{m[k]:.0f}" for k in MOT_KEYS)
                     + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    result = DemoResult(bag_path, sheet_path, video_path, report, written, len(cams), metrics,
                        time.perf_counter() - t0)
    log(f"demo: {written} sets x {len(cams)} cameras -> {sheet_path}, {video_path}, {report}")
    log(f"demo: detection mAP50 {det['map50']:.3f}, mAP50-95 {det['map50_95']:.3f} ({source})")
    log(f"demo: tracking on {source} detections: HOTA {mean['HOTA']:.3f}, MOTA {mean['MOTA']:.3f}, "
        f"IDF1 {mean['IDF1']:.3f} (mean over cameras; {result.seconds_total:.1f} s)")
    return result


def _source_line(source: str) -> str:
    if source == "simulated":
        return "**simulated** (ground truth + seeded noise; no trained detector found at models/hsvdet-n)"
    return f"the trained detector `{source}` (one batched forward pass per set of cameras)"
