"""Evaluate the whole perception graph on a bag: in process here, through the running ROS graph in ``eval/graph.py``;
both produce the same ``GraphOutputs`` and are scored by the same ``score_outputs``.

What the graph does to each synchronised set, mirrored in process by ``run_in_process``:

1. ``PerceptionPipeline.process`` (depth of every camera, detections, target candidates);
2. per camera a ``MultiObjectTracker`` on that camera's detections (the tracking node's), the confirmed tracks
   being what is scored;
3. the single target: ``TargetTracker`` initialised at the plan's box and stamp, updated with the candidates of its
   camera on every later set (the tracking node's), its box scored against the ground truth.

The target plan (``plan_target``) is the longest run of consecutive sets in which one object stays visible in one
camera (visibility >= ``min_visibility``, sides >= ``min_box_px``), as ``eval depthtrack`` picks its sequences; the
request is sent before the first image, stamped with the run's first set, so the template comes from that image.

``score_outputs`` writes the keys of ``report.json``: ``depth`` (Depth Anything V2 metrics + MAE, PSNR, mean over
camera images with ground truth), ``det`` (COCO mAP over every camera image), ``mot`` (HOTA, MOTA, IDF1 per camera
and their mean), ``sot`` (success AUC, precision@20px, mean IoU over the run after its first set), and ``coverage``
(sets and images the graph answered: a set it dropped counts as empty detections, no depth, and the target box of the
last answered set).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depthtracker.data.bags import BagReader
from depthtracker.eval.hsvdet import filter_ground_truth
from depthtracker.eval.metrics import depth_metrics, det_metrics, mot_metrics, sot_metrics
from depthtracker.perception import PerceptionConfig, PerceptionPipeline
from depthtracker.tracking import MultiObjectTracker, TargetTracker, TargetTrackerConfig, TrackerConfig
from depthtracker.types import Detections, TrackState

__all__ = ["GraphOutputs", "ReplayConfig", "TargetPlan", "load_perception_config", "plan_target", "run_in_process",
           "score_outputs", "report_lines", "MOT_KEYS", "DEPTH_KEYS", "SOT_KEYS"]

MOT_KEYS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")
DEPTH_KEYS = ("abs_rel", "rmse", "delta1", "mae", "psnr")
SOT_KEYS = ("success_auc", "precision_20px", "mean_iou")


@dataclass(frozen=True)
class ReplayConfig:
    """What the graph evaluation scores."""

    max_sets: int = 0  # sets read from the bag, >= 0 (0 = all)
    min_visibility: float = 0.5  # target run: the object at least this visible; detection GT: the same threshold
    min_box_px: float = 4.0  # target run: both box sides at least this, pixels
    min_box_area: float = 16.0  # detection ground truth: boxes smaller than this (px^2) are not counted
    min_frames: int = 5  # shortest target run, >= 2

    def __post_init__(self) -> None:
        if self.max_sets < 0 or self.min_frames < 2:
            raise ValueError(f"ReplayConfig: need max_sets >= 0 and min_frames >= 2, got {self.max_sets}, "
                             f"{self.min_frames}")


@dataclass(frozen=True, eq=False)
class TargetPlan:
    """The single target scored: ``camera_id``, ground-truth ``object_id``, the run's ``stamps`` and ``boxes``."""

    camera_id: int
    object_id: int
    stamps: list[int]
    boxes: np.ndarray  # (T, 4) ground-truth xyxy pixels, T = len(stamps)

    @property
    def start_stamp_ns(self) -> int:
        return self.stamps[0]

    @property
    def start_box(self) -> np.ndarray:
        return self.boxes[0]


@dataclass
class GraphOutputs:
    """What the graph published, keyed by image stamp and camera (``tracks``: confirmed multi-object tracks as
    ``(ids, boxes, labels)``; ``target``: the target track's box by stamp)."""

    depths: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    detections: dict[tuple[int, int], Detections] = field(default_factory=dict)
    tracks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    target: dict[int, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def load_perception_config(path: str | os.PathLike[str] | None = None) -> PerceptionConfig:
    """The ``PerceptionConfig`` fields of the perception node's params file (default ``config/perception.yaml``):
    in-process evaluation runs with the values the node reads."""
    import dataclasses

    from depthtracker.configio import config_dir, from_mapping, load_yaml, ros_parameters

    p = path or config_dir() / "perception.yaml"
    params = ros_parameters(load_yaml(p), str(p))
    fields = {f.name for f in dataclasses.fields(PerceptionConfig)}
    return from_mapping(PerceptionConfig, {k: v for k, v in params.items() if k in fields}, str(p))


def plan_target(bag: str | os.PathLike[str], config: ReplayConfig | None = None) -> TargetPlan | None:
    """The longest visible run of one object in one camera (None when no run reaches ``min_frames``)."""
    cfg = config or ReplayConfig()
    runs: dict[tuple[int, int], dict[int, tuple[int, np.ndarray]]] = {}
    with BagReader(bag) as reader:
        for i, s in enumerate(reader.samples()):
            if cfg.max_sets and i >= cfg.max_sets:
                break
            for ann in s.annotations:
                if ann is None:
                    continue
                wh = ann.boxes[:, 2:] - ann.boxes[:, :2]
                keep = (ann.visibility >= cfg.min_visibility) & (wh.min(1) >= cfg.min_box_px)
                for oid, box in zip(ann.ids[keep], ann.boxes[keep]):
                    runs.setdefault((ann.camera_id, int(oid)), {})[i] = (s.stamp_ns, box)
    best = None
    for (cam, oid), frames in sorted(runs.items()):
        idx = sorted(frames)
        start = 0
        for k in range(1, len(idx) + 1):
            if k == len(idx) or idx[k] != idx[k - 1] + 1:
                if best is None or k - start > len(best[2]):
                    best = (cam, oid, idx[start:k], frames)
                start = k
    if best is None or len(best[2]) < cfg.min_frames:
        return None
    cam, oid, sel, frames = best
    return TargetPlan(cam, oid, [frames[i][0] for i in sel], np.stack([frames[i][1] for i in sel]).astype(np.float32))


def run_in_process(bag: str | os.PathLike[str], pipeline: PerceptionPipeline, plan: TargetPlan | None,
                   tracker_config: TrackerConfig | None = None, target_config: TargetTrackerConfig | None = None,
                   config: ReplayConfig | None = None, progress: Callable[[int, int], None] | None = None,
                   ) -> GraphOutputs:
    """Run the graph's computation on every set of ``bag`` in this process (see the module docstring)."""
    cfg = config or ReplayConfig()
    out = GraphOutputs()
    trackers: dict[int, MultiObjectTracker] = {}
    target = TargetTracker(target_config or pipeline.target_config)
    if pipeline.depth is None:
        plan = None  # no tracking model: the target is not followed (score_outputs then says so)
    if plan is not None:
        pipeline.set_target(plan.camera_id, plan.start_box, plan.start_stamp_ns)
        target.initialize(plan.start_box, plan.start_stamp_ns, plan.camera_id)
    with BagReader(bag) as reader:
        cams = reader.cameras
        total = reader.num_sets if not cfg.max_sets else min(cfg.max_sets, reader.num_sets)
        for i, s in enumerate(reader.samples()):
            if i >= total:
                break
            res = pipeline.process(s.frames, cams)
            for k, f in enumerate(s.frames):
                key = (f.stamp_ns, f.camera_id)
                if res.depths is not None:
                    out.depths[key] = res.depths[k].depth
                dets = res.detections[k] if res.detections is not None else Detections.empty(f.camera_id,
                                                                                             f.stamp_ns)
                out.detections[key] = dets
                tracker = trackers.setdefault(f.camera_id, MultiObjectTracker(tracker_config or TrackerConfig(),
                                                                              camera_id=f.camera_id))
                tracker.update(dets)
                t = tracker.tracks
                keep = t.states == int(TrackState.CONFIRMED)
                out.tracks[key] = (t.ids[keep], t.boxes[keep], t.labels[keep])
            if plan is not None and res.target is not None:
                st = target.update(res.target.boxes, res.target.scores, res.target.stamp_ns)
                out.target[res.target.stamp_ns] = np.asarray(st.box, np.float32)
            elif plan is not None and plan.start_stamp_ns in {f.stamp_ns for f in s.frames}:
                out.target[plan.start_stamp_ns] = plan.start_box.copy()  # the template's image: the box as set
            if progress is not None:
                progress(i + 1, total)
    out.info = {"path": "in-process", "device": pipeline.device, "checkpoints": dict(pipeline.checkpoints)}
    return out


def _mean(rows: list[dict[str, float]], keys: tuple[str, ...]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) if rows else math.nan for k in keys}


def score_outputs(bag: str | os.PathLike[str], outputs: GraphOutputs, plan: TargetPlan | None,
                  config: ReplayConfig | None = None) -> dict[str, Any]:
    """Score ``outputs`` against the bag's ground truth (keys in the module docstring)."""
    cfg = config or ReplayConfig()
    depth_rows, det_gt, det_pred = [], [], []
    gt_seq: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    hyp_seq: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    sets = images = answered_images = answered_depth = 0
    answered_sets: set[int] = set()
    with BagReader(bag) as reader:
        names = reader.class_names
        total = reader.num_sets if not cfg.max_sets else min(cfg.max_sets, reader.num_sets)
        for i, s in enumerate(reader.samples()):
            if i >= total:
                break
            sets += 1
            for f, gt_depth, ann in zip(s.frames, s.depths, s.annotations):
                images += 1
                key = (f.stamp_ns, f.camera_id)
                pred = outputs.depths.get(key)
                answered_depth += pred is not None
                if gt_depth is not None and pred is not None and np.isfinite(gt_depth.depth).any():
                    depth_rows.append(depth_metrics(pred, gt_depth.depth))
                dets = outputs.detections.get(key)
                if dets is not None:
                    answered_images += 1
                    answered_sets.add(s.stamp_ns)
                if ann is None:
                    continue
                det_gt.append(filter_ground_truth(ann, cfg.min_visibility, cfg.min_box_area))
                det_pred.append((dets.boxes, dets.scores, dets.labels) if dets is not None else
                                (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)))
                gt_seq.setdefault(f.camera_id, {})[i] = (ann.ids, ann.boxes)
                hyp_seq.setdefault(f.camera_id, {})[i] = outputs.tracks.get(
                    key, (np.zeros(0, np.int64), np.zeros((0, 4), np.float32)))[:2]
    per_camera = {f"cam{c}": {k: float(v) for k, v in mot_metrics(gt_seq[c], hyp_seq[c]).items()
                              if k in MOT_KEYS} for c in sorted(gt_seq)}
    det = det_metrics(det_gt, det_pred, max(1, len(names)), names or None) if det_gt else {}
    sot: dict[str, Any] = {**dict.fromkeys(SOT_KEYS, math.nan), "skipped": "no target run in the bag"}
    if plan is not None:
        boxes, last = [], plan.start_box
        for stamp in plan.stamps[1:]:
            last = outputs.target.get(stamp, last)  # a dropped set: the consumer still holds the last box
            boxes.append(last)
        sot = {**sot_metrics(np.stack(boxes), plan.boxes[1:]), "camera": plan.camera_id, "object": plan.object_id,
               "frames": len(plan.stamps), "answered": sum(s in outputs.target for s in plan.stamps[1:])}
        sot.pop("skipped", None)
    return {
        "depth": {**_mean(depth_rows, DEPTH_KEYS), "images": len(depth_rows)} if outputs.depths else
        {**dict.fromkeys(DEPTH_KEYS, math.nan), "skipped": "no depth published (depth model off)"},
        "det": {k: float(det[k]) for k in ("map50", "map50_95", "map75", "mar100") if k in det},
        "mot": {"mean": _mean(list(per_camera.values()), MOT_KEYS), "per_camera": per_camera},
        "sot": sot,
        "coverage": {"sets": sets, "sets_answered": len(answered_sets), "images": images,
                     "images_with_detections": answered_images, "images_with_depth": answered_depth},
        "path": outputs.info,
    }


def report_lines(report: dict[str, Any], title: str) -> list[str]:
    """The Markdown of a graph report (``score_outputs`` + ``bag``; ``difference`` when compared)."""
    d, det, m, s, c = (report[k] for k in ("depth", "det", "mot", "sot", "coverage"))
    path = report.get("path", {})
    lines = [f"# {title}: `{report.get('bag', '')}`", "",
             f"Path: {path.get('path')} (device {path.get('device')}, playback rate {path.get('rate', '-')}). "
             f"Coverage: {c['sets_answered']}/{c['sets']} sets answered, {c['images_with_depth']}/{c['images']} "
             "depth images.", "", "| task | metric | value |", "|---|---|---|"]
    for k in DEPTH_KEYS:
        lines.append(f"| depth | {k} | {d.get(k, math.nan):.4f} |")
    for k in ("map50", "map50_95"):
        lines.append(f"| detection | {k} | {det.get(k, math.nan):.4f} |")
    for k in ("HOTA", "MOTA", "IDF1"):
        lines.append(f"| multi-object tracking (mean over cameras) | {k} | {m['mean'][k]:.4f} |")
    for k in SOT_KEYS:
        lines.append(f"| single target | {k} | {s.get(k, math.nan):.4f} |")
    if path.get("losses"):
        lines += ["", "Losses inside the graph (each node's last /diagnostics): " + "; ".join(
            f"{kind} " + ", ".join(f"{k} {v}" for k, v in values.items())
            for kind, values in sorted(path["losses"].items()))]
    if "difference" in report:
        lines += ["", "Graph minus in-process: " + ", ".join(f"{k} {v:+.4f}" for k, v in report["difference"].items())]
    return lines
