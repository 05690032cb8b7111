"""Association of tracks to detections: costs, gates and the cost-limited linear assignment.

The trackers build a (tracks x detections) cost matrix (1 - IoU, optionally 1 - IoU * score), mark forbidden pairs
(chi-square gate, class mismatch) as ``inf`` and solve it with :func:`linear_assignment`.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["linear_assignment", "iou_xyxy"]


def iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) float64 xyxy boxes -> (N, M).

    Same result as ``geometry.boxes.box_iou`` for valid boxes, with fewer NumPy calls: the tracker calls it three
    times a frame on small matrices, where per-call overhead, not arithmetic, is the cost.
    """
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2) intersection: bottom-right ...
    wh -= np.maximum(a[:, None, :2], b[None, :, :2])  # ... minus top-left
    np.maximum(wh, 0.0, out=wh)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    size_a = a[:, 2:] - a[:, :2]
    size_b = b[:, 2:] - b[:, :2]
    union = (size_a[:, 0] * size_a[:, 1])[:, None] + (size_b[:, 0] * size_b[:, 1])[None, :]
    union -= inter
    np.maximum(union, 1e-12, out=union)
    inter /= union
    return inter


def linear_assignment(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost matching where a pair is allowed only if its cost is ``<= max_cost``.

    Args:
        cost: (N, M) float costs; ``inf`` or NaN forbids a pair.
        max_cost: the largest cost a match may have.

    Returns:
        ``rows, cols``: (K,) int arrays of matched pairs.

    This is the objective of ``lap.lapjv(cost, cost_limit=max_cost)`` used by ByteTrack (leaving a row and a column
    unmatched costs ``max_cost``, so a weak match never displaces two strong ones) solved with SciPy: clipping every
    forbidden or too expensive entry to just above ``max_cost`` gives a rectangular problem whose optimum differs from
    the cost-limited one only by a constant, and pairs sitting on a clipped entry are dropped afterwards.
    """
    if cost.size == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty
    valid = cost <= max_cost  # False for inf and NaN
    clipped = np.where(valid, cost, max_cost + 1e-6)
    rows, cols = linear_sum_assignment(clipped)
    keep = valid[rows, cols]
    return rows[keep], cols[keep]
