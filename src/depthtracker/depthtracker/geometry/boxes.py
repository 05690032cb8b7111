"""Box format conversions and overlap.

Formats (all pixels, arrays of shape (..., 4)):

* ``xyxy``   ``[x1, y1, x2, y2]``: corners; the format of every public API in depthtracker.
* ``xywh``   ``[x1, y1, w, h]``: top-left corner and size (MOTChallenge, COCO, GOT-10k files).
* ``cxcywh`` ``[cx, cy, w, h]``: centre and size.
* ``cxcyah`` ``[cx, cy, a, h]`` with aspect ``a = w / h``: the Kalman measurement space (tracking.kalman).

Conversions keep the input dtype and never modify their input.
"""

from __future__ import annotations

import math

import numpy as np


def xyxy_to_xywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b)
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def xyxy_to_cxcywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b)
    return np.concatenate([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], axis=-1)


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b)
    half = b[..., 2:] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def xyxy_to_cxcyah(b: np.ndarray) -> np.ndarray:
    """``[cx, cy, w/h, h]``; a zero-height box gives an infinite aspect, so callers validate boxes first."""
    b = np.asarray(b)
    c = xyxy_to_cxcywh(b)
    return np.stack([c[..., 0], c[..., 1], c[..., 2] / c[..., 3], c[..., 3]], axis=-1)


def cxcyah_to_xyxy(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b)
    w = b[..., 2] * b[..., 3]
    return cxcywh_to_xyxy(np.stack([b[..., 0], b[..., 1], w, b[..., 3]], axis=-1))


def box_area(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M) float64. Two empty boxes have IoU 0."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2)
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def clip_boxes(b: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip xyxy boxes to the image ``[0, width] x [0, height]``."""
    b = np.array(b, copy=True)
    b[..., 0::2] = np.clip(b[..., 0::2], 0, width)
    b[..., 1::2] = np.clip(b[..., 1::2], 0, height)
    return b


def box_median_depth(depth: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Median of the finite depths inside each box.

    Args:
        depth: (H, W) float32 metres, NaN (or inf) = unknown.
        boxes: (M, 4) ``[x1, y1, x2, y2]`` pixels; a pixel is inside when its centre (``u + 0.5, v + 0.5``) is,
            so ``[u0, v0, u1 + 1, v1 + 1]`` covers columns ``u0..u1`` and rows ``v0..v1``; clipped to the image.

    Returns:
        (M,) float32 medians in metres; NaN for a box with no finite pixel (outside the image, or all unknown).
    """
    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValueError(f"depth must be a (H, W) array, got shape {d.shape}")
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    h, w = d.shape
    out = np.full(len(b), np.nan, np.float32)
    for k, (x1, y1, x2, y2) in enumerate(b):
        if not np.isfinite((x1, y1, x2, y2)).all():
            continue
        u0, u1 = max(math.ceil(x1 - 0.5), 0), min(math.floor(x2 - 0.5) + 1, w)
        v0, v1 = max(math.ceil(y1 - 0.5), 0), min(math.floor(y2 - 0.5) + 1, h)
        if u1 <= u0 or v1 <= v0:
            continue
        patch = d[v0:v1, u0:u1]
        vals = patch[np.isfinite(patch)]
        if vals.size:
            out[k] = np.median(vals)
    return out
