"""Score DepthTrack on a bag beside classical baselines (what ``depthtracker eval depthtrack`` runs).

``evaluate_depthtrack(bag, checkpoint, out)`` writes ``OUT/report.json``::

    {"depth": {abs_rel, rmse, delta1, mae, psnr, ...},        # model, every camera, every valid GT pixel
     "sot": {success_auc, precision_20px, mean_iou, ...},     # model + TargetTracker, mean over sequences
     "baselines": {"sgbm": {abs_rel, ..., coverage},          # left camera of the stereo pair, where SGBM matched
                   "csrt": {success_auc, ...}, "kcf": {...}},  # the same sequences and initial boxes
     "real": {"middlebury_motorcycle": {"model": {...}, "sgbm": {...}, ...}},  # a real stereo pair
     "model": {...checkpoint, config...}, "data": {...}}

plus ``report.md`` and plots (``depth_examples.png``, ``sot_success.png``). Depth metrics are computed per camera
image at the bag's resolution (the model's depth upsampled in log space) and averaged over images, as Depth
Anything's evaluation averages per sample. ``model_on_sgbm_pixels`` repeats the model's metrics on exactly the
pixels SGBM covered, for a like-for-like comparison.

Tracking sequences: for each camera and object id, the longest run of consecutive sets where the object is visible
(visibility >= ``min_visibility``, sides >= ``min_box_px``); the ``max_sequences`` longest runs of at least
``min_frames`` are used. Every tracker starts from the ground-truth box of the run's first frame; metrics (OTB
success AUC, precision at 20 px, mean IoU) are over the remaining frames, then averaged over sequences.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthtracker.data.bags import BagReader
from depthtracker.eval.baselines import CV_TRACKERS, SGBMConfig, cv_tracker_available, run_cv_tracker, sgbm_depth
from depthtracker.eval.metrics import depth_metrics, sot_metrics

__all__ = ["DepthTrackEvalConfig", "evaluate_depthtrack", "add_visible", "longest_runs", "run_frames",
           "tracking_sequences", "box_ious", "DEPTH_KEYS", "SOT_KEYS"]

DEPTH_KEYS = ("abs_rel", "rmse", "delta1", "mae", "psnr")
SOT_KEYS = ("success_auc", "precision_20px", "mean_iou")


@dataclass(frozen=True)
class DepthTrackEvalConfig:
    """What ``evaluate_depthtrack`` scores."""

    max_sets: int = 0  # synchronised sets read from the bag, >= 0 (0 = all)
    min_visibility: float = 0.5  # a frame joins a tracking run when the target is at least this visible
    min_box_px: float = 4.0  # ... and both box sides are >= this, pixels
    min_frames: int = 5  # shortest tracking run scored, >= 2
    max_sequences: int = 8  # longest runs scored, >= 1
    sgbm: SGBMConfig = SGBMConfig()  # the stereo baseline
    middlebury: bool = True  # also score the real Middlebury Motorcycle pair (scikit-image) beside SGBM

    def __post_init__(self) -> None:
        if self.max_sets < 0 or self.min_frames < 2 or self.max_sequences < 1:
            raise ValueError(f"DepthTrackEvalConfig: need max_sets >= 0, min_frames >= 2, max_sequences >= 1; got "
                             f"{self.max_sets}, {self.min_frames}, {self.max_sequences}")
        if not 0 <= self.min_visibility <= 1:
            raise ValueError(f"DepthTrackEvalConfig.min_visibility must be in [0, 1], got {self.min_visibility}")


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if isinstance(rows[0][k], (int, float))}


def _nan_metrics(keys: tuple[str, ...], reason: str) -> dict[str, Any]:
    return {**dict.fromkeys(keys, math.nan), "skipped": reason}


def add_visible(tracks: dict[tuple[int, int], dict[int, np.ndarray]], index: int, annotations: list[Any],
                cfg: DepthTrackEvalConfig) -> None:
    """Record in ``tracks[(camera position, object id)][index]`` the box of every object of set ``index`` that is
    visible enough to join a tracking run (visibility >= ``min_visibility``, both sides >= ``min_box_px``)."""
    for k, ann in enumerate(annotations):
        if ann is None:
            continue
        wh = ann.boxes[:, 2:] - ann.boxes[:, :2]
        keep = (ann.visibility >= cfg.min_visibility) & (wh.min(1) >= cfg.min_box_px)
        for oid, box in zip(ann.ids[keep], ann.boxes[keep]):
            tracks.setdefault((k, int(oid)), {})[index] = box


def longest_runs(tracks: dict[tuple[int, int], dict[int, np.ndarray]],
                 cfg: DepthTrackEvalConfig) -> list[dict[str, Any]]:
    """Longest consecutive run per (camera, id), the ``max_sequences`` longest of at least ``min_frames``."""
    runs = []
    for (cam, oid), frames in tracks.items():
        idx = sorted(frames)
        best, start = (0, 0), 0
        for k in range(1, len(idx) + 1):
            if k == len(idx) or idx[k] != idx[k - 1] + 1:
                if k - start > best[1] - best[0]:
                    best = (start, k)
                start = k
        sel = idx[best[0]:best[1]]
        if len(sel) >= cfg.min_frames:
            runs.append({"camera": cam, "id": oid, "sets": sel, "boxes": np.stack([frames[i] for i in sel])})
    runs.sort(key=lambda r: (-len(r["sets"]), r["camera"], r["id"]))
    return runs[: cfg.max_sequences]


def evaluate_depthtrack(bag: str | os.PathLike[str], checkpoint: str | os.PathLike[str] | None,
                        out_dir: str | os.PathLike[str], config: DepthTrackEvalConfig | None = None,
                        progress: bool = True, device: str = "auto") -> dict[str, Any]:
    """Evaluate a checkpoint (None = the shipped one) on ``bag``; writes the report files and returns the report."""
    from depthtracker.models.depthtrack.predictor import DepthTrackPredictor, default_checkpoint

    cfg = config or DepthTrackEvalConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    pred = DepthTrackPredictor.from_checkpoint(ckpt, device=device)
    depth_rows, sgbm_rows, same_rows = [], [], []
    tracks: dict[tuple[int, int], dict[int, np.ndarray]] = {}
    set_stamps: list[int] = []
    example = None
    with BagReader(bag) as reader:
        cams = reader.cameras
        pair, baseline = reader.stereo_pair, reader.baseline_m
        total = reader.num_sets if cfg.max_sets == 0 else min(cfg.max_sets, reader.num_sets)
        it = reader.samples()
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=total, desc="eval depthtrack", unit="set", leave=False)
        pos = {c: k for k, c in enumerate(reader.camera_ids)}
        for i, s in enumerate(it):
            if i >= total:
                break
            set_stamps.append(s.stamp_ns)
            maps = pred.predict_depth([f.image for f in s.frames], cams, s.stamp_ns)
            for dm, gt in zip(maps, s.depths):
                if gt is not None and np.isfinite(gt.depth).any():
                    depth_rows.append(depth_metrics(dm.depth, gt.depth))
            if pair is not None and s.depths[pos[pair[0]]] is not None:
                left, right = s.frames[pos[pair[0]]].image, s.frames[pos[pair[1]]].image
                sd = sgbm_depth(left, right, float(cams[pos[pair[0]]].K[0, 0]), baseline, cfg.sgbm)
                gt = s.depths[pos[pair[0]]].depth
                mask = np.isfinite(sd) & np.isfinite(gt) & (gt > 0)
                if mask.any():
                    sgbm_rows.append({**depth_metrics(sd, gt, mask), "coverage": float(mask.mean())})
                    same_rows.append(depth_metrics(maps[pos[pair[0]]].depth, gt, mask))
                if example is None:
                    example = (left, gt, maps[pos[pair[0]]].depth, sd)
            elif example is None and s.depths[0] is not None:
                example = (s.frames[0].image, s.depths[0].depth, maps[0].depth, None)
            add_visible(tracks, i, s.annotations, cfg)
        runs = longest_runs(tracks, cfg)
        frames = run_frames(reader, runs, total)
    sot_rows: dict[str, list[dict[str, float]]] = {"model": [], **{k: [] for k in CV_TRACKERS}}
    curves: dict[str, list[np.ndarray]] = {k: [] for k in sot_rows}
    for r in runs:
        seq = [frames[(r["camera"], i)] for i in r["sets"]]
        gt = r["boxes"]
        stamps = [set_stamps[i] for i in r["sets"]]
        results = {"model": pred.follow(seq, gt[0], stamps)}
        for kind in CV_TRACKERS:
            if cv_tracker_available(kind):
                results[kind] = run_cv_tracker(kind, seq, gt[0])
        for name, boxes in results.items():
            sot_rows[name].append(sot_metrics(boxes[1:], gt[1:]))
            curves[name].append(box_ious(boxes[1:], gt[1:]))
    no_seq = "no tracking sequence in the bag"
    report: dict[str, Any] = {
        "depth": _mean(depth_rows) if depth_rows else _nan_metrics(DEPTH_KEYS, "no depth ground truth"),
        "sot": _mean(sot_rows["model"]) if runs else _nan_metrics(SOT_KEYS, no_seq),
        "baselines": {
            "sgbm": (_mean(sgbm_rows) if sgbm_rows else _nan_metrics(DEPTH_KEYS, "no stereo pair with depth GT")),
            **{k: (_mean(sot_rows[k]) if sot_rows[k] else
                   _nan_metrics(SOT_KEYS, no_seq if cv_tracker_available(k) else "needs opencv-contrib"))
               for k in CV_TRACKERS},
        },
        "model_on_sgbm_pixels": _mean(same_rows) if same_rows else {},
        "real": {"middlebury_motorcycle": _middlebury(pred) if cfg.middlebury else {"skipped": "not asked"}},
        "model": {"checkpoint": str(ckpt), "config": pred.config.to_dict()},
        "data": {"bag": str(bag), "sets": total, "depth_images": len(depth_rows), "sequences": len(runs),
                 "sequence_frames": [len(r["sets"]) for r in runs], "config": asdict(cfg)},
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, allow_nan=True) + "\n")
    from depthtracker.eval.depthtrack_report import write_markdown, write_plots

    plots = write_plots(out, example, curves)
    write_markdown(out / "report.md", report, plots)
    return report


def _middlebury(pred: Any) -> dict[str, Any]:
    from depthtracker.eval.middlebury import middlebury_motorcycle

    try:
        return middlebury_motorcycle(pred)
    except ImportError as exc:
        return {"skipped": str(exc)}


def run_frames(reader: BagReader, runs: list[dict[str, Any]], total: int) -> dict[tuple[int, int], np.ndarray]:
    """The images the tracking ``runs`` need, ``{(camera position, set index): image}``: a second pass over the
    first ``total`` sets of ``reader``, keeping only those frames."""
    need = {(r["camera"], i) for r in runs for i in r["sets"]}
    frames: dict[tuple[int, int], np.ndarray] = {}
    for i, s in enumerate(reader.samples() if need else ()):
        if i >= total:
            break
        frames.update({(k, i): f.image for k, f in enumerate(s.frames) if (k, i) in need})
    return frames


def tracking_sequences(bag: str | os.PathLike[str], cfg: DepthTrackEvalConfig | None = None) -> list[dict[str, Any]]:
    """The tracking sequences ``evaluate_depthtrack`` scores on ``bag``, without its depth pass: ``longest_runs``
    entries plus ``frames`` (the camera's images, in order) and ``stamps`` (their set stamps, ns)."""
    cfg = cfg or DepthTrackEvalConfig()
    tracks: dict[tuple[int, int], dict[int, np.ndarray]] = {}
    stamps: list[int] = []
    with BagReader(bag) as reader:
        total = reader.num_sets if cfg.max_sets == 0 else min(cfg.max_sets, reader.num_sets)
        for i, s in enumerate(reader.samples()):
            if i >= total:
                break
            stamps.append(s.stamp_ns)
            add_visible(tracks, i, s.annotations, cfg)
        runs = longest_runs(tracks, cfg)
        frames = run_frames(reader, runs, total)
    return [{**r, "frames": [frames[(r["camera"], i)] for i in r["sets"]], "stamps": [stamps[i] for i in r["sets"]]}
            for r in runs]


def box_ious(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(pred[:, :2], gt[:, :2]), np.minimum(pred[:, 2:], gt[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    union = (pred[:, 2:] - pred[:, :2]).prod(1) + (gt[:, 2:] - gt[:, :2]).prod(1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
