"""Depth on a real stereo pair: Middlebury 2014 *Motorcycle*, as scikit-image ships it (quarter resolution).

``middlebury_motorcycle(predictor)`` runs the DepthTrack predictor on the pair as the two cameras of one rig and
SGBM on the same pair, and scores both against the ground-truth disparity turned into depth with the pair's
calibration (from ``skimage.data.stereo_motorcycle``'s documentation: focal length 994.978 px, principal point
(311.193, 254.877) px, right principal point 31.086 px further in x, baseline 193.001 mm):
``depth = f * B / (disparity + doffs)``. Metrics are those of ``depth_metrics`` over the pixels with ground truth;
SGBM's are over the pixels it matched (``coverage``), with the model's on exactly those pixels beside them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depthtracker.eval.baselines import SGBMConfig, sgbm_depth
from depthtracker.eval.metrics import depth_metrics
from depthtracker.types import CameraModel

__all__ = ["middlebury_motorcycle", "MOTORCYCLE"]

# Calibration of the down-sampled pair (skimage.data.stereo_motorcycle docstring).
MOTORCYCLE = {"f": 994.978, "cx": 311.193, "cy": 254.877, "doffs": 31.086, "baseline_m": 0.193001}


def _cameras(width: int, height: int) -> list[CameraModel]:
    c = MOTORCYCLE
    K0 = np.array([[c["f"], 0, c["cx"]], [0, c["f"], c["cy"]], [0, 0, 1.0]])
    K1 = K0.copy()
    K1[0, 2] += c["doffs"]
    T1 = np.eye(4)
    T1[0, 3] = c["baseline_m"]  # the right camera sits one baseline along the left camera's x axis
    return [CameraModel(0, width, height, K0, np.eye(4)), CameraModel(1, width, height, K1, T1)]


def middlebury_motorcycle(predictor: Any) -> dict[str, Any]:
    """``{"model": metrics, "sgbm": metrics + coverage, "model_on_sgbm_pixels": metrics, "pixels": n}``; raises
    ``ImportError`` naming scikit-image when it is not installed."""
    try:
        from skimage.data import stereo_motorcycle
    except ImportError as exc:
        raise ImportError("the Middlebury Motorcycle pair comes with scikit-image: pip install scikit-image") from exc
    left, right, disp = stereo_motorcycle()
    c = MOTORCYCLE
    valid = np.isfinite(disp)
    gt = np.full(disp.shape, np.nan, np.float32)
    gt[valid] = c["f"] * c["baseline_m"] / (disp[valid] + c["doffs"])
    h, w = disp.shape
    pred = predictor.predict_depth([left, right], _cameras(w, h))[0].depth
    min_depth = float(np.nanmin(gt)) * 0.8
    sd = sgbm_depth(left, right, c["f"], c["baseline_m"], SGBMConfig(min_depth_m=min_depth), doffs=c["doffs"])
    matched = valid & np.isfinite(sd)
    return {
        "model": depth_metrics(pred, gt, valid),
        "sgbm": {**depth_metrics(sd, gt, matched), "coverage": float(matched.sum() / max(valid.sum(), 1))},
        "model_on_sgbm_pixels": depth_metrics(pred, gt, matched),
        "pixels": int(valid.sum()),
        "depth_range_m": [float(np.nanmin(gt)), float(np.nanmax(gt))],
    }
