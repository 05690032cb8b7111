"""DepthTrack outputs -> what the rest of the system consumes: candidate boxes for ``TargetTracker``, depth maps.

Tracking: the centre heatmap's local maxima (3x3 max-pool, CenterNet's NMS) are the candidates, best first; each
becomes a box from the size and offset maps at its cell, with a score ``sigmoid(logit)`` and per-coordinate 1-sigma
uncertainties (Laplace scale ``b`` has standard deviation ``b * sqrt(2)``; ``x1 = cx - w / 2`` gives
``sigma_x1 = sqrt(sigma_cx^2 + sigma_w^2 / 4)``). Boxes are in search-crop pixels until mapped back to the image
with the crop's :class:`~depthtracker.data.crops.CropTransform`.

Depth: log-depth at network-input resolution is resized bilinearly *in log space* (scale-consistent) to the camera
image; pixels outside ``[min_depth, max_depth]`` of the model are never produced (the head's range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from depthtracker.data.crops import CropTransform
from depthtracker.models.depthtrack.heads import SOTMaps

__all__ = ["SOTCandidates", "decode_sot", "depth_to_image"]


@dataclass(frozen=True, eq=False)
class SOTCandidates:
    """Candidates of one search crop: ``boxes (K, 4)`` float32 xyxy, ``scores (K,)`` float32 in [0, 1] (best
    first), ``sigmas (K, 4)`` float32 1-sigma of each coordinate; pixels of the crop or, after ``to_image``, of
    the camera image. Feed ``boxes`` and ``scores`` to ``TargetTracker.update``."""

    boxes: np.ndarray
    scores: np.ndarray
    sigmas: np.ndarray

    def to_image(self, transform: CropTransform, width: int | None = None,
                 height: int | None = None) -> SOTCandidates:
        """Map from crop to image pixels, clipped to the image when its size is given."""
        boxes = transform.boxes_to_image(self.boxes)
        if width is not None and height is not None:
            boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        return SOTCandidates(boxes, self.scores, (self.sigmas / transform.scale).astype(np.float32))


@torch.no_grad()
def decode_sot(maps: SOTMaps, search_size: int, max_candidates: int = 5,
               score_threshold: float = 0.0) -> list[SOTCandidates]:
    """One :class:`SOTCandidates` per batch item (search-crop pixels); see the module docstring."""
    heat = torch.sigmoid(maps.heatmap.float())  # (B, 1, h, w)
    b, _, h, w = heat.shape
    stride = search_size / w
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)  # non-maxima -> 0
    k = min(max_candidates, h * w)
    scores, idx = peaks.view(b, -1).topk(k, dim=1)  # (B, k)
    iy, ix = idx // w, idx % w
    out = []
    for i in range(b):
        keep = scores[i] >= max(score_threshold, 1e-12)  # drop non-peak cells (score 0)
        yi, xi = iy[i][keep], ix[i][keep]
        off = maps.offset[i, :, yi, xi].T.float()  # (K, 2)
        size = maps.size[i, :, yi, xi].T.float() * search_size  # (K, 2) pixels
        cx = (xi.float() + off[:, 0]) * stride
        cy = (yi.float() + off[:, 1]) * stride
        boxes = torch.stack([cx - size[:, 0] / 2, cy - size[:, 1] / 2, cx + size[:, 0] / 2, cy + size[:, 1] / 2], 1)
        sd = maps.log_scale[i, :, yi, xi].T.float().exp() * math.sqrt(2) * search_size  # (K, 4) cx, cy, w, h
        sx = torch.sqrt(sd[:, 0] ** 2 + sd[:, 2] ** 2 / 4)
        sy = torch.sqrt(sd[:, 1] ** 2 + sd[:, 3] ** 2 / 4)
        sig = torch.stack([sx, sy, sx, sy], 1)
        out.append(SOTCandidates(boxes.cpu().numpy().astype(np.float32).reshape(-1, 4),
                                 scores[i][keep].cpu().numpy().astype(np.float32),
                                 sig.cpu().numpy().astype(np.float32).reshape(-1, 4)))
    return out


@torch.no_grad()
def depth_to_image(log_depth: torch.Tensor, height: int, width: int) -> np.ndarray:
    """``log_depth (H', W')`` log-metres -> ``(height, width)`` float32 metres (bilinear in log space; pixel
    centres aligned, ``align_corners=False``)."""
    x = log_depth.float().reshape(1, 1, *log_depth.shape[-2:])
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x[0, 0].exp().cpu().numpy().astype(np.float32)
