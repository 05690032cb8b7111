"""Depth colour maps, labelled boxes and image mosaics (OpenCV; all images RGB uint8)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# A fixed palette so an id keeps its colour in every camera and frame (golden-ratio hue steps).
_PHI = 0.618033988749895


def id_color(obj_id: int) -> tuple[int, int, int]:
    """A stable, saturated RGB colour for an integer id."""
    hue = int(((obj_id * _PHI) % 1.0) * 179)
    hsv = np.uint8([[[hue, 220, 255]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def colorize_depth(depth: np.ndarray, near: float = 1.0, far: float = 15.0) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB (turbo on inverse depth: near is red, far is blue); NaN is black.

    Inverse depth spreads the colours where robots care most (close range); ``near``/``far`` fix the scale so
    colours mean the same distance in every frame and camera.
    """
    d = np.asarray(depth, np.float32)
    valid = np.isfinite(d) & (d > 0)
    inv = np.zeros_like(d)
    inv[valid] = 1.0 / np.clip(d[valid], near, far)
    lo, hi = 1.0 / far, 1.0 / near
    t = np.clip((inv - lo) / (hi - lo), 0, 1)
    bgr = cv2.applyColorMap((t * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    ids: Sequence[int] | np.ndarray,
    labels: Sequence[str] | None = None,
    thickness: int = 2,
) -> np.ndarray:
    """A copy of RGB ``image`` with xyxy ``boxes`` drawn in their id's colour and captioned ``#id label``."""
    out = np.ascontiguousarray(image).copy()
    scale = max(0.35, min(out.shape[:2]) / 900)
    for k, box in enumerate(np.asarray(boxes).reshape(-1, 4)):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = id_color(int(ids[k]))
        cv2.rectangle(out, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), color, thickness)
        text = f"#{int(ids[k])}" + (f" {labels[k]}" if labels is not None else "")
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 3 if y1 - th - 4 >= 0 else y1 + th + 3
        cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 2, ty + base - 1), color, -1)
        cv2.putText(out, text, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def caption(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``image`` with ``text`` in its top-left corner on a dark band."""
    out = np.ascontiguousarray(image).copy()
    scale = max(0.4, min(out.shape[:2]) / 700)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (tw + 8, th + base + 6), (0, 0, 0), -1)
    cv2.putText(out, text, (4, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def mosaic(tiles: Sequence[Sequence[np.ndarray]], pad: int = 4) -> np.ndarray:
    """Grid of RGB tiles (rows of equal-size images) with ``pad`` grey pixels between them."""
    if not tiles or not tiles[0]:
        raise ValueError("mosaic needs at least one tile")
    h, w = tiles[0][0].shape[:2]
    rows, cols = len(tiles), max(len(r) for r in tiles)
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, 3), 40, np.uint8)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            if tile.shape[:2] != (h, w):
                tile = cv2.resize(tile, (w, h), interpolation=cv2.INTER_AREA)
            out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = tile
    return out
