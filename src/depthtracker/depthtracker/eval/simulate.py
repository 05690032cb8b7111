"""A stand-in detector: ground-truth boxes with seeded noise, for exercising trackers before a model is trained.

Always labelled as simulated where it is used (the demo's report says ``detections: simulated``); it never stands in
for a model's numbers. Noise model per camera image: each visible object is missed with ``miss_rate`` (more often
when barely visible), its corners jittered by ``jitter`` x box size, its score drawn from ``tp_score``; a Poisson
number (mean ``fp_rate``) of false positives of random size and class with low scores is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depthtracker.types import Annotations, Detections


@dataclass(frozen=True)
class DetectionNoise:
    jitter: float = 0.05  # corner jitter, 1-sigma as a fraction of box width/height, >= 0
    miss_rate: float = 0.1  # probability a fully visible object is missed, in [0, 1]
    min_visibility: float = 0.2  # objects less visible than this are never detected, in [0, 1]
    fp_rate: float = 0.5  # mean false positives per image (Poisson), >= 0
    tp_score: tuple[float, float] = (0.8, 0.12)  # mean, std of true-positive scores (clipped to [0.01, 1])
    fp_score: tuple[float, float] = (0.05, 0.6)  # uniform range of false-positive scores
    num_classes: int = 3  # classes drawn for false positives, >= 1

    def __post_init__(self) -> None:
        for name in ("jitter", "fp_rate"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("miss_rate", "min_visibility"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")


def simulate_detections(
    ann: Annotations, width: int, height: int, rng: np.random.Generator, noise: DetectionNoise = DetectionNoise()
) -> Detections:
    """Noisy detections of one camera image from its ground truth (boxes clipped to the image)."""
    vis = ann.visibility.astype(np.float64)
    p_miss = np.clip(noise.miss_rate + (1 - noise.miss_rate) * (1 - vis) ** 2, 0, 1)
    keep = (vis >= noise.min_visibility) & (rng.random(len(ann)) >= p_miss)
    boxes = ann.boxes[keep].astype(np.float64)
    wh = boxes[:, 2:] - boxes[:, :2]  # (K, 2)
    scale = np.concatenate([wh, wh], axis=1)  # (K, 4): width, height, width, height
    boxes = boxes + rng.normal(0.0, noise.jitter, boxes.shape) * scale
    scores = np.clip(rng.normal(noise.tp_score[0], noise.tp_score[1], len(boxes)), 0.01, 1.0)
    labels = ann.labels[keep]
    n_fp = rng.poisson(noise.fp_rate)
    if n_fp:
        size = rng.uniform(10, 0.25 * min(width, height), (n_fp, 2))
        xy = rng.uniform(0, 1, (n_fp, 2)) * (np.array([width, height]) - size)
        boxes = np.concatenate([boxes, np.concatenate([xy, xy + size], axis=1)])
        scores = np.concatenate([scores, rng.uniform(*noise.fp_score, n_fp)])
        labels = np.concatenate([labels, rng.integers(0, noise.num_classes, n_fp)])
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    x1, x2 = np.minimum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 0], boxes[:, 2])
    y1, y2 = np.minimum(boxes[:, 1], boxes[:, 3]), np.maximum(boxes[:, 1], boxes[:, 3])
    boxes = np.stack([x1, y1, x2, y2], axis=1)
    return Detections(boxes.astype(np.float32), scores.astype(np.float32), labels.astype(np.int64),
                      ann.camera_id, ann.stamp_ns)
