"""Single-object tracking metrics (OTB / LaSOT one-pass evaluation).

* ``success_auc``: the success rate ``fraction of frames with IoU > t`` averaged over the 21 thresholds
  ``t = 0, 0.05, ..., 1`` (OTB; pysot's ``success_overlap``). Equals the area under the success plot.
* ``precision_20px``: fraction of frames whose centre error is ``<= 20`` pixels (OTB precision at 20 px).
* ``norm_precision``: fraction of frames whose centre error, divided per axis by the ground-truth box size, has a
  norm ``<= 0.2`` (pysot's normalised precision at 0.2, for LaSOT/TrackingNet). ``norm_precision_auc`` is its mean
  over the thresholds ``0, 0.01, ..., 0.5`` (LaSOT's ranking number).
* ``mean_iou``: mean IoU over frames.

Absent ground truth: a ground-truth row with a NaN (the target is out of view or fully occluded) or with zero width
or height is left out of every metric, numerator and denominator alike (``num_frames`` counts the frames scored).
A prediction row with a NaN (the tracker reports no box) in a scored frame is a failure: IoU 0 and an infinite
centre error.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sot_metrics", "SUCCESS_THRESHOLDS"]

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
NORM_PRECISION_THRESHOLDS = np.arange(51) / 100.0


def _boxes(name: str, b: object) -> np.ndarray:
    b = np.asarray(b, np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (T, 4) xyxy, got {b.shape}")
    bad = np.isinf(b).any(axis=1) | ((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]))
    if bad.any():
        raise ValueError(f"{name} has inf values or negative width/height in rows {np.flatnonzero(bad).tolist()}")
    return b


def sot_metrics(pred_boxes: object, gt_boxes: object) -> dict[str, float]:
    """One-pass evaluation of a single-target track.

    Args:
        pred_boxes: (T, 4) predicted ``[x1, y1, x2, y2]`` pixels per frame (NaN row = no prediction).
        gt_boxes: (T, 4) ground truth, same format (NaN row or empty box = target absent, frame not scored).

    Returns:
        ``success_auc, precision_20px, norm_precision, norm_precision_auc, mean_iou`` in [0, 1] and ``num_frames``
        (frames scored). With no scored frame every value is NaN and ``num_frames`` is 0.
    """
    pred = _boxes("pred_boxes", pred_boxes)
    gt = _boxes("gt_boxes", gt_boxes)
    if pred.shape != gt.shape:
        raise ValueError(f"pred_boxes {pred.shape} and gt_boxes {gt.shape} must have the same shape")
    gt_wh = gt[:, 2:] - gt[:, :2]
    scored = ~np.isnan(gt).any(axis=1) & (gt_wh > 0).all(axis=1)
    pred, gt, gt_wh = pred[scored], gt[scored], gt_wh[scored]
    n = int(scored.sum())
    if n == 0:
        nan = float("nan")
        return {"success_auc": nan, "precision_20px": nan, "norm_precision": nan, "norm_precision_auc": nan,
                "mean_iou": nan, "num_frames": 0}
    missing = np.isnan(pred).any(axis=1)
    pred = np.where(missing[:, None], 0.0, pred)

    lt = np.maximum(pred[:, :2], gt[:, :2])
    rb = np.minimum(pred[:, 2:], gt[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    union = np.prod(pred[:, 2:] - pred[:, :2], axis=1) + np.prod(gt_wh, axis=1) - inter
    iou = np.where(missing, 0.0, inter / union)

    d = (pred[:, :2] + pred[:, 2:]) / 2 - (gt[:, :2] + gt[:, 2:]) / 2  # (T, 2) centre error, pixels
    err = np.where(missing, np.inf, np.hypot(d[:, 0], d[:, 1]))
    norm_err = np.where(missing, np.inf, np.hypot(d[:, 0] / gt_wh[:, 0], d[:, 1] / gt_wh[:, 1]))

    success = (iou[None, :] > SUCCESS_THRESHOLDS[:, None]).mean(axis=1)
    norm_curve = (norm_err[None, :] <= NORM_PRECISION_THRESHOLDS[:, None]).mean(axis=1)
    return {
        "success_auc": float(success.mean()),
        "precision_20px": float((err <= 20.0).mean()),
        "norm_precision": float((norm_err <= 0.2).mean()),
        "norm_precision_auc": float(norm_curve.mean()),
        "mean_iou": float(iou.mean()),
        "num_frames": n,
    }
