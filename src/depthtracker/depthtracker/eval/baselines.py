"""Classical baselines scored beside DepthTrack: stereo SGBM depth, and the CSRT / KCF single-object trackers.

* **SGBM** (Hirschmüller 2008, OpenCV's ``StereoSGBM``) on the rig's rectified stereo pair: disparity ``d`` in
  pixels on the left image, metric depth ``fx * B / d``; pixels without a valid disparity are NaN. The disparity
  search range covers depths down to ``min_depth_m`` (``num_disparities = fx * B / min_depth``, rounded up to 16).
* **CSRT** (Lukežič et al. 2017) and **KCF** (Henriques et al. 2015) from opencv-contrib: initialised on the first
  box, updated frame by frame; on a reported failure the last box is kept (what a user of the API sees).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["SGBMConfig", "sgbm_depth", "cv_tracker_available", "run_cv_tracker", "CV_TRACKERS"]

CV_TRACKERS = ("csrt", "kcf")


@dataclass(frozen=True)
class SGBMConfig:
    """OpenCV StereoSGBM settings (P1/P2 follow OpenCV's sample: 8 and 32 x channels x block_size^2)."""

    min_depth_m: float = 0.3  # nearest depth the disparity range covers, metres (> 0)
    max_disparities: int = 256  # cap of the disparity range, pixels (multiple of 16)
    block_size: int = 5  # matching block side, odd, >= 1
    uniqueness_ratio: int = 10  # % margin by which the best match must beat the second, [0, 100]
    speckle_window: int = 50  # speckle filter window (pixels); 0 = off
    speckle_range: int = 2  # largest disparity change inside a speckle component
    disp12_max_diff: int = 1  # left-right consistency tolerance, pixels (-1 = off)

    def __post_init__(self) -> None:
        if not self.min_depth_m > 0:
            raise ValueError(f"SGBMConfig.min_depth_m must be > 0, got {self.min_depth_m!r}")
        if self.max_disparities < 16 or self.max_disparities % 16:
            raise ValueError(f"SGBMConfig.max_disparities must be a multiple of 16, >= 16, got {self.max_disparities}")
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise ValueError(f"SGBMConfig.block_size must be odd and >= 1, got {self.block_size}")
        if not 0 <= self.uniqueness_ratio <= 100:
            raise ValueError(f"SGBMConfig.uniqueness_ratio must be in [0, 100], got {self.uniqueness_ratio}")


def sgbm_depth(left: np.ndarray, right: np.ndarray, fx: float, baseline_m: float,
               config: SGBMConfig | None = None, doffs: float = 0.0) -> np.ndarray:
    """Depth of the left image of a rectified pair: (H, W) float32 metres, NaN where no disparity was found.

    ``left``/``right``: (H, W, 3) uint8 RGB (or grey (H, W)); ``fx`` in pixels; ``baseline_m`` > 0; ``doffs``: the
    right principal point's x minus the left's, pixels (Middlebury's ``doffs``; 0 for a pair sharing K):
    ``depth = fx * baseline / (disparity + doffs)``.
    """
    cfg = config or SGBMConfig()
    if left.shape != right.shape:
        raise ValueError(f"stereo images differ in shape: {left.shape} vs {right.shape}")
    if not (fx > 0 and baseline_m > 0):
        raise ValueError(f"sgbm_depth needs fx > 0 and baseline_m > 0, got fx={fx}, baseline_m={baseline_m}")
    gray = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) if im.ndim == 3 else im for im in (left, right)]
    need = fx * baseline_m / cfg.min_depth_m - doffs
    nd = int(min(cfg.max_disparities, max(16, 16 * math.ceil(need / 16))))
    bs = cfg.block_size
    matcher = cv2.StereoSGBM_create(minDisparity=0, numDisparities=nd, blockSize=bs, P1=8 * bs * bs,
                                    P2=32 * bs * bs, disp12MaxDiff=cfg.disp12_max_diff,
                                    uniquenessRatio=cfg.uniqueness_ratio, speckleWindowSize=cfg.speckle_window,
                                    speckleRange=cfg.speckle_range, mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
    disp = matcher.compute(gray[0], gray[1]).astype(np.float32) / 16.0  # fixed point, 4 fractional bits
    depth = np.full(disp.shape, np.nan, np.float32)
    ok = disp > 0
    depth[ok] = fx * baseline_m / (disp[ok] + doffs)
    return depth


def _factory(kind: str):
    name = {"csrt": "TrackerCSRT", "kcf": "TrackerKCF"}[kind]
    for owner in (cv2, getattr(cv2, "legacy", None)):
        if owner is None:
            continue
        fn = getattr(owner, f"{name}_create", None)
        if fn is not None:
            return fn
    return None


def cv_tracker_available(kind: str) -> bool:
    """True when this OpenCV build has the tracker (CSRT and KCF need opencv-contrib)."""
    if kind not in CV_TRACKERS:
        raise ValueError(f"unknown OpenCV tracker {kind!r}; expected one of {CV_TRACKERS}")
    return _factory(kind) is not None


def run_cv_tracker(kind: str, frames: list[np.ndarray], init_box: np.ndarray) -> np.ndarray:
    """Track ``init_box`` (xyxy, frame 0) through RGB ``frames`` with OpenCV's ``kind`` tracker -> (T, 4) float32."""
    fn = _factory(kind) if kind in CV_TRACKERS else None
    if fn is None:
        raise RuntimeError(f"OpenCV tracker {kind!r} is not available: install opencv-contrib-python-headless")
    tracker = fn()
    b = np.asarray(init_box, np.float64)
    box = np.asarray(init_box, np.float32)
    rect = (int(round(b[0])), int(round(b[1])), max(1, int(round(b[2] - b[0]))), max(1, int(round(b[3] - b[1]))))
    tracker.init(cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR), rect)
    out = [box]
    for frame in frames[1:]:
        ok, r = tracker.update(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if ok:
            x, y, w, h = (float(v) for v in r)
            box = np.array([x, y, x + w, y + h], np.float32)
        out.append(box)
    return np.stack(out)
