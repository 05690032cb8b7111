"""Square crops for single-target tracking (template and search regions) and camera-preserving crop-resize.

Pixel convention (``depthtracker.types``): pixel centres at integer + 0.5, boxes in continuous coordinates. A crop
``CropTransform(scale, x0, y0)`` maps image point ``u`` to crop point ``u' = scale * (u - x0)`` (same for y).
Pixels outside the image are filled with the image's mean colour (OSTrack's padding), so the network never sees
a hard black border that moves with the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["CropTransform", "crop_square", "crop_box_side", "resize_camera", "crop_intrinsics"]


@dataclass(frozen=True)
class CropTransform:
    """``crop = scale * (image - (x0, y0))``; ``size`` is the crop side in pixels."""

    scale: float
    x0: float
    y0: float
    size: int

    def boxes_to_crop(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy image boxes ``(..., 4)`` -> crop pixels (float32)."""
        b = np.asarray(boxes, np.float64)
        off = np.array([self.x0, self.y0, self.x0, self.y0])
        return ((b - off) * self.scale).astype(np.float32)

    def boxes_to_image(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy crop boxes ``(..., 4)`` -> image pixels (float32)."""
        b = np.asarray(boxes, np.float64)
        off = np.array([self.x0, self.y0, self.x0, self.y0])
        return (b / self.scale + off).astype(np.float32)


def crop_box_side(box: np.ndarray, factor: float) -> float:
    """Side of a square crop around ``box`` (xyxy): ``factor * sqrt(w * h)`` (OSTrack / STARK), at least 1 pixel."""
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    return max(1.0, factor * math.sqrt(max(w, 1e-6) * max(h, 1e-6)))


def crop_square(image: np.ndarray, centre: tuple[float, float], side: float, out_size: int,
                fill: np.ndarray | None = None) -> tuple[np.ndarray, CropTransform]:
    """Square crop of ``side`` image pixels centred at ``centre`` (x, y), resized to ``out_size``.

    Returns the ``(out_size, out_size, 3)`` uint8 crop (bilinear; area when shrinking a lot would be better, but
    bilinear matches what trackers do at inference and costs one warp) and its :class:`CropTransform`.
    """
    if side <= 0 or out_size < 1:
        raise ValueError(f"crop side {side} and out_size {out_size} must be positive")
    s = out_size / side
    x0, y0 = centre[0] - side / 2, centre[1] - side / 2
    # warpAffine samples destination pixel *indices*; with centres at index + 0.5 on both sides:
    # i' + 0.5 = s * (i + 0.5 - x0)  =>  i' = s * i + s * (0.5 - x0) - 0.5
    M = np.array([[s, 0.0, s * (0.5 - x0) - 0.5], [0.0, s, s * (0.5 - y0) - 0.5]])
    if fill is None:
        fill = image.reshape(-1, image.shape[-1]).mean(0)
    crop = cv2.warpAffine(image, M, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=tuple(float(c) for c in fill))
    return crop, CropTransform(s, x0, y0, out_size)


def crop_intrinsics(K: np.ndarray, x0: float, y0: float, sx: float, sy: float) -> np.ndarray:
    """``K`` of the image cropped at ``(x0, y0)`` and scaled by ``(sx, sy)``: ``u' = sx * (u - x0)``."""
    K2 = np.array(K, np.float64, copy=True)
    K2[0, 0] *= sx
    K2[1, 1] *= sy
    K2[0, 2] = (K2[0, 2] - x0) * sx
    K2[1, 2] = (K2[1, 2] - y0) * sy
    return K2


def resize_camera(image: np.ndarray, K: np.ndarray, out_hw: tuple[int, int],
                  crop: tuple[int, int, int, int] | None = None,
                  depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Crop ``(x0, y0, w, h)`` (integer pixels; None = whole image) and resize to ``out_hw``, keeping the camera
    model exact: returns the image (area/bilinear), the new ``K`` (focal lengths and principal point scaled and
    shifted) and, when given, the depth resampled by nearest neighbour at the new pixel centres (metric values
    unchanged and never blended across an edge; NaN stays NaN)."""
    H0, W0 = image.shape[:2]
    x0, y0, cw, ch = crop if crop is not None else (0, 0, W0, H0)
    if not (0 <= x0 and 0 <= y0 and cw > 0 and ch > 0 and x0 + cw <= W0 and y0 + ch <= H0):
        raise ValueError(f"crop {crop} is not inside the {W0}x{H0} image")
    H, W = out_hw
    sx, sy = W / cw, H / ch
    part = image[y0:y0 + ch, x0:x0 + cw]
    interp = cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_LINEAR
    out = cv2.resize(part, (W, H), interpolation=interp) if (cw, ch) != (W, H) else part.copy()
    K2 = crop_intrinsics(K, x0, y0, sx, sy)
    d = None
    if depth is not None:
        cols = np.minimum(np.floor(x0 + (np.arange(W) + 0.5) / sx).astype(np.int64), W0 - 1)
        rows = np.minimum(np.floor(y0 + (np.arange(H) + 0.5) / sy).astype(np.int64), H0 - 1)
        d = np.ascontiguousarray(depth[rows[:, None], cols[None, :]], dtype=np.float32)
    return out, K2, d
