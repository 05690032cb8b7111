"""Dense depth metrics, as Depth Anything V2's ``metric_depth/util/metric.py`` (``eval_depth``), plus MAE and PSNR.

Over the valid pixels ``V`` (ground truth finite and > 0, and ``valid_mask`` where given), with ``p`` the prediction
and ``g`` the ground truth in metres:

* ``abs_rel = mean(|p - g| / g)``, ``sq_rel = mean((p - g)^2 / g)``
* ``rmse = sqrt(mean((p - g)^2))``, ``rmse_log = sqrt(mean((ln p - ln g)^2))``, ``log10 = mean(|log10 p - log10 g|)``
* ``silog = sqrt(mean(e^2) - 0.5 mean(e)^2)`` with ``e = ln p - ln g`` (the variance weight 0.5 of Depth Anything V2)
* ``delta_k = fraction with max(p / g, g / p) < 1.25^k``, k = 1, 2, 3
* ``mae = mean(|p - g|)``; ``psnr = 20 log10(peak / rmse)`` dB with ``peak = max g over V`` (the depth range of this
  ground truth, so the value does not depend on a sensor's nominal maximum); ``inf`` when ``rmse = 0``.

The prediction must be finite on ``V`` (``ValueError`` otherwise: a model's unknown pixels must be masked out
explicitly, not silently skipped); predictions ``<= min_depth`` are clamped to ``min_depth`` so the log metrics stay
defined, as evaluation code in the field clamps to the dataset's minimum depth.
"""

from __future__ import annotations

import numpy as np

__all__ = ["depth_metrics"]


def depth_metrics(pred: object, gt: object, valid_mask: object | None = None,
                  min_depth: float = 1e-3) -> dict[str, float]:
    """Depth errors of ``pred`` against ``gt``, both (H, W) (or any equal shape) metres.

    Args:
        pred: predicted depth, metres.
        gt: ground-truth depth, metres; NaN, inf and values ``<= 0`` are invalid and excluded.
        valid_mask: optional bool array of the same shape; False pixels are excluded too.
        min_depth: predictions are clamped to at least this, metres.

    Returns:
        ``abs_rel, sq_rel, rmse, rmse_log, log10, silog, delta1, delta2, delta3, mae, psnr`` and ``num_valid``.
    """
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    if p.shape != g.shape:
        raise ValueError(f"pred {p.shape} and gt {g.shape} must have the same shape")
    if not min_depth > 0:
        raise ValueError(f"min_depth must be > 0, got {min_depth}")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(g) & (g > 0)
    if valid_mask is not None:
        m = np.asarray(valid_mask)
        if m.shape != g.shape or m.dtype != np.bool_:
            raise ValueError(f"valid_mask must be a bool array of shape {g.shape}, got {m.dtype} {m.shape}")
        valid &= m
    if not valid.any():
        raise ValueError("depth_metrics: no valid ground-truth pixel (finite, > 0 and inside valid_mask)")
    p, g = p[valid], g[valid]
    if not np.isfinite(p).all():
        raise ValueError(f"depth_metrics: pred has {int((~np.isfinite(p)).sum())} non-finite values where the "
                         "ground truth is valid; exclude them with valid_mask")
    p = np.maximum(p, min_depth)
    diff = p - g
    diff_log = np.log(p) - np.log(g)
    ratio = np.maximum(g / p, p / g)
    rmse = float(np.sqrt(np.mean(diff**2)))
    peak = float(g.max())
    return {
        "abs_rel": float(np.mean(np.abs(diff) / g)),
        "sq_rel": float(np.mean(diff**2 / g)),
        "rmse": rmse,
        "rmse_log": float(np.sqrt(np.mean(diff_log**2))),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        "silog": float(np.sqrt(np.mean(diff_log**2) - 0.5 * np.mean(diff_log) ** 2)),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "mae": float(np.mean(np.abs(diff))),
        "psnr": float(20.0 * np.log10(peak / rmse)) if rmse > 0 else float("inf"),
        "num_valid": int(valid.sum()),
    }
