"""Image transforms shared by training and inference: letterbox resizing and HSV colour jitter (OpenCV)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Letterbox", "hsv_jitter"]


@dataclass(frozen=True)
class Letterbox:
    """Source image -> network input: ``x_in = x_src * scale_x + pad_x``, ``y_in = y_src * scale_y + pad_y``.

    ``src_size`` and ``dst_size`` are (H, W). With ``keep_aspect`` the two scales are equal up to the rounding of
    the resized size (they are exact ratios of integer sizes, so boxes map onto the resized pixels exactly).
    """

    src_size: tuple[int, int]
    dst_size: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    @classmethod
    def fit(cls, src_size: tuple[int, int], dst_size: tuple[int, int], keep_aspect: bool = True) -> Letterbox:
        (h, w), (H, W) = src_size, dst_size
        if keep_aspect:
            s = min(H / h, W / w)
            nw, nh = min(W, max(1, round(w * s))), min(H, max(1, round(h * s)))
        else:
            nw, nh = W, H
        return cls((h, w), (H, W), nw / w, nh / h, (W - nw) // 2, (H - nh) // 2)

    def apply(self, image: np.ndarray, pad_value: int = 114) -> np.ndarray:
        """(h, w, C) uint8 source image -> (H, W, C) network input."""
        (h, w), (H, W) = self.src_size, self.dst_size
        if image.shape[:2] != (h, w):
            raise ValueError(f"Letterbox for {w}x{h} images got a {image.shape[1]}x{image.shape[0]} image")
        nw, nh = round(w * self.scale_x), round(h * self.scale_y)
        shrink = nw * nh < w * h
        resized = image if (nw, nh) == (w, h) else cv2.resize(
            image, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if (nw, nh) == (W, H):
            return np.ascontiguousarray(resized)
        out = np.full((H, W) + image.shape[2:], pad_value, np.uint8)
        out[self.pad_y:self.pad_y + nh, self.pad_x:self.pad_x + nw] = resized
        return out

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """(K, 4) xyxy source pixels -> network-input pixels (float32)."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        s = np.array([self.scale_x, self.scale_y] * 2, np.float32)
        p = np.array([self.pad_x, self.pad_y] * 2, np.float32)
        return b * s + p

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """(K, 4) xyxy network-input pixels -> source-image pixels (float32), clipped to the source image."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        s = np.array([self.scale_x, self.scale_y] * 2, np.float32)
        p = np.array([self.pad_x, self.pad_y] * 2, np.float32)
        out = (b - p) / s
        h, w = self.src_size
        return np.clip(out, 0, np.array([w, h, w, h], np.float32))


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, h: float, s: float, v: float) -> np.ndarray:
    """Rotate hue by up to ``h`` of the circle and scale saturation and value by ``1 +- s``, ``1 +- v`` (RGB uint8)."""
    dh, gs, gv = rng.uniform(-1.0, 1.0, 3) * (h, s, v) + (0.0, 1.0, 1.0)
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)  # OpenCV hue is 0..179
    x = np.arange(256, dtype=np.float32)
    lut_h = np.mod(x + dh * 180.0, 180.0).astype(np.uint8)
    lut_s = np.clip(x * gs, 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gv, 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hsv[..., 0], lut_h), cv2.LUT(hsv[..., 1], lut_s), cv2.LUT(hsv[..., 2], lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
