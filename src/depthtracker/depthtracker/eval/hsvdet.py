"""Evaluate HSV-DET on a bag (what ``depthtracker eval hsvdet`` runs): COCO mAP, PR curves, per-class AP, latency.

Usage::

    report = evaluate_hsvdet("out/data/test-s9001", "models/hsvdet-n.safetensors", "out/eval/hsvdet")
    report["det"]["map50_95"], report["latency"]["batch1_ms_per_image"]

The bag is replayed through the inference path the nodes use (``HSVDetPredictor.predict``: letterbox, one forward
pass per synchronised set of cameras, NMS, boxes back in camera pixels) and scored against the bag's ground truth
in camera pixels with ``eval.metrics.det_metrics`` (COCO AP; ``score_threshold`` is low, as COCO evaluation
expects). Ground truth is every ``objects_gt`` box whose visible fraction is at least ``min_visibility`` (the
training default) and whose area is at least ``min_box_area``. ``out_dir`` receives ``report.json``,
``report.md``, ``pr_curves.png`` (precision-recall per class at IoU 0.5) and ``ap_per_class.png``.

Latency is wall time of ``predict`` (letterbox + forward + NMS, at the checkpoint's own score threshold, i.e. as
deployed) per image, median over ``latency_runs`` calls after ``latency_warmup``, on this machine's CPU with
torch's current thread count.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthtracker.eval.metrics.det import det_metrics, precision_recall_curves
from depthtracker.machine import machine_info

__all__ = ["HSVDetEvalConfig", "evaluate_dataset", "evaluate_hsvdet", "detect_bag", "measure_latency",
           "filter_ground_truth"]


@dataclass(frozen=True)
class HSVDetEvalConfig:
    """How a bag is scored."""

    min_visibility: float = 0.25  # ground truth counts when its visible fraction is >= this, [0, 1] (as training)
    min_box_area: float = 0.0  # ground truth counts when its area is >= this, camera px^2, >= 0 (0 = every box)
    score_threshold: float = 0.001  # least detection score kept for AP, [0, 1] (COCO practice: very low)
    latency_batches: tuple[int, ...] = (1, 4)  # batch sizes timed, each >= 1
    latency_runs: int = 20  # timed predict() calls per batch size, >= 1 (median reported)
    latency_warmup: int = 3  # untimed calls first, >= 0

    def __post_init__(self) -> None:
        for name, lo, hi in (("min_visibility", 0.0, 1.0), ("min_box_area", 0.0, float("inf")),
                             ("score_threshold", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ValueError(f"HSVDetEvalConfig.{name} must be a number in [{lo}, {hi}], got {v!r}")
        if not self.latency_batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                                           for b in self.latency_batches):
            raise ValueError(f"HSVDetEvalConfig.latency_batches must be integers >= 1, got {self.latency_batches!r}")
        for name, lo in (("latency_runs", 1), ("latency_warmup", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"HSVDetEvalConfig.{name} must be an integer >= {lo}, got {v!r}")


def evaluate_dataset(model: torch.nn.Module, dataset: Any, batch_size: int, score_threshold: float) -> dict[str, Any]:
    """COCO mAP of ``model`` on a ``DetectionDataset`` (no augmentation), boxes in network-input pixels.

    The training callback: cheap (images are already letterboxed in the dataset) and monotone with the camera-pixel
    score, though ``ap_small`` uses network-input areas. Returns ``map50``, ``map50_95``, ``ap_small``, ``per_class``.
    """
    from depthtracker.data.datasets import collate_detections
    from depthtracker.models.hsvdet.postprocess import postprocess

    cfg = model.config.replace(score_threshold=score_threshold)
    device = next(model.parameters()).device
    gt, pred = [], []
    for start in range(0, len(dataset), batch_size):
        idx = range(start, min(start + batch_size, len(dataset)))
        batch = collate_detections([dataset[i] for i in idx])
        for i, det in zip(idx, postprocess(model(batch.images.to(device)), cfg), strict=True):
            gt.append(dataset.ground_truth(i))
            pred.append((det.boxes, det.scores, det.labels))
    m = det_metrics(gt, pred, dataset.num_classes, dataset.class_names)
    return {k: m[k] for k in ("map50", "map50_95", "ap_small", "per_class")}


def filter_ground_truth(ann: Any, min_visibility: float, min_box_area: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(K, 4)`` and labels ``(K,)`` of ``Annotations`` that count as ground truth (NaN visibility counts)."""
    b = np.asarray(ann.boxes, np.float32).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    keep = ~(ann.visibility < min_visibility) & (area >= min_box_area) & (area > 0)
    return b[keep], np.asarray(ann.labels, np.int64)[keep]


def detect_bag(predictor: Any, bag: str | os.PathLike[str], config: HSVDetEvalConfig,
               progress: bool = False) -> tuple[list, list, tuple[str, ...], np.ndarray | None]:
    """Run ``predictor`` over every set of ``bag`` (one forward pass per set). Returns ground truth and predictions
    per camera image (``det_metrics`` form), the bag's class names and one image of the bag (for latency)."""
    from depthtracker.data.bags import BagReader

    gt, pred, example = [], [], None
    with BagReader(bag) as reader:
        names = reader.class_names
        samples = reader.samples()
        if progress:
            from tqdm import tqdm

            samples = tqdm(samples, total=reader.num_sets, desc=f"eval {Path(bag).name}", unit="set", leave=False)
        for sample in samples:
            idx = [k for k, a in enumerate(sample.annotations) if a is not None]
            if not idx:
                continue
            frames = [sample.frames[k] for k in idx]
            dets = predictor.predict([f.image for f in frames], [f.camera_id for f in frames],
                                     [f.stamp_ns for f in frames])
            for k, det in zip(idx, dets, strict=True):
                gt.append(filter_ground_truth(sample.annotations[k], config.min_visibility, config.min_box_area))
                pred.append((det.boxes, det.scores, det.labels))
            if example is None:
                example = frames[0].image
    if not gt:
        raise ValueError(f"bag {bag} has no camera with objects_gt ground truth; evaluation needs it")
    return gt, pred, names, example


def measure_latency(predictor: Any, image: np.ndarray, batches: Sequence[int], runs: int,
                    warmup: int) -> dict[str, float]:
    """Median wall time of ``predictor.predict`` per image, ms, for each batch size (``batch{B}_ms_per_image``)."""
    out: dict[str, float] = {}
    for b in batches:
        images = [image] * b
        for _ in range(warmup):
            predictor.predict(images)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            predictor.predict(images)
            times.append(time.perf_counter() - t0)
        out[f"batch{b}_ms_per_image"] = 1e3 * statistics.median(times) / b
    return out


def _plots(out_dir: Path, curves: dict[str, Any], per_class: dict[str, Any], title: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, curve in curves.items():
        if curve is not None:
            ax.plot(curve[0], curve[1], label=f"{name} (AP50 {per_class[name]['ap50']:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"{title}: PR at IoU 0.5")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(out_dir / "pr_curves.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    names = list(per_class)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [max(per_class[n]["ap50"], 0) for n in names], 0.4, label="AP50")
    ax.bar(x + 0.2, [max(per_class[n]["ap50_95"], 0) for n in names], 0.4, label="AP50-95")
    ax.set_xticks(x, names)
    ax.set(ylim=(0, 1), ylabel="AP", title=f"{title}: AP per class")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "ap_per_class.png")
    plt.close(fig)
    return ["pr_curves.png", "ap_per_class.png"]


def evaluate_hsvdet(bag: str | os.PathLike[str], checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                    config: HSVDetEvalConfig | None = None, progress: bool = False) -> dict[str, Any]:
    """Score ``checkpoint`` on ``bag``; write ``report.json``, ``report.md`` and plots into ``out_dir``; return the
    report (``det`` holds ``map50``, ``map50_95``, ``ap_small``, ``per_class``, ...; ``latency`` the timings)."""
    from depthtracker.models.hsvdet.predictor import HSVDetPredictor

    config = config or HSVDetEvalConfig()
    if not Path(bag).exists():
        raise ValueError(f"bag {bag} does not exist")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictor = HSVDetPredictor.from_checkpoint(checkpoint, score_threshold=config.score_threshold)
    gt, pred, names, example = detect_bag(predictor, bag, config, progress)
    num_classes = predictor.config.num_classes
    names = tuple(names) if len(names) == num_classes else tuple(predictor.class_names) or None
    det = det_metrics(gt, pred, num_classes, names)
    curves = precision_recall_curves(gt, pred, num_classes, names, iou=0.5)
    deployed = HSVDetPredictor.from_checkpoint(checkpoint)  # the checkpoint's own thresholds, as deployed
    latency = measure_latency(deployed, example, config.latency_batches, config.latency_runs, config.latency_warmup)
    latency["image_size"] = [int(example.shape[1]), int(example.shape[0])]
    latency["network_input"] = [predictor.config.input_width, predictor.config.input_height]
    report = {"bag": str(bag), "checkpoint": str(checkpoint), "model": predictor.config.to_dict(), "det": det,
              "latency": latency, "machine": machine_info(), "config": asdict(config)}
    plots = _plots(out, curves, det["per_class"], Path(str(checkpoint)).stem)
    report["plots"] = plots
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (out / "report.md").write_text(report_markdown(report))
    return report


def report_markdown(report: dict[str, Any]) -> str:
    det, lat, mach = report["det"], report["latency"], report["machine"]
    lines = [f"# HSV-DET evaluation: `{Path(report['checkpoint']).name}` on `{report['bag']}`", "",
             f"{det['num_images']} camera images, {det['num_gt']} ground-truth boxes (visibility >= "
             f"{report['config']['min_visibility']}), {det['num_pred']} detections (score >= "
             f"{report['config']['score_threshold']}).", "",
             "| mAP50 | mAP50-95 | mAP75 | AP small | AP medium | AP large | AR100 |", "|---" * 7 + "|",
             "| " + " | ".join(f"{det[k]:.3f}" for k in ("map50", "map50_95", "map75", "ap_small", "ap_medium",
                                                         "ap_large", "mar100")) + " |", "",
             "(-1 = no ground truth in that size range.)", "", "| class | AP50 | AP50-95 | boxes |", "|---" * 4 + "|"]
    for name, m in det["per_class"].items():
        lines.append(f"| {name} | {m['ap50']:.3f} | {m['ap50_95']:.3f} | {m['num_gt']} |")
    lines += ["", f"Latency of `predict` (letterbox {lat['image_size'][0]}x{lat['image_size'][1]} -> "
              f"{lat['network_input'][0]}x{lat['network_input'][1]}, forward, NMS), median ms per image: "
              + ", ".join(f"{k.split('_')[0]} {v:.1f}" for k, v in lat.items() if k.endswith("_ms_per_image")) + ".",
              f"Machine: {mach['cpu']}, {mach['logical_cores']} logical cores, torch {mach['torch']} "
              f"({mach['torch_threads']} threads).", "",
              "![PR curves](pr_curves.png) ![AP per class](ap_per_class.png)"]
    return "\n".join(lines) + "\n"
