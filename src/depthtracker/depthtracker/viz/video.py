"""MP4 writing through OpenCV (``mp4v``: the encoder the PyPI OpenCV wheels carry)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np


class VideoWriter:
    """Write RGB frames to an MP4; the frame size is fixed by the first frame. Use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"video fps must be > 0, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        if self._writer is None:
            # Even sizes: many players refuse odd-sized MPEG-4 streams.
            self._size = (w - w % 2, h - h % 2)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise OSError(f"cannot open video {self.path} for writing (OpenCV mp4v encoder)")
        elif (w - w % 2, h - h % 2) != self._size:
            raise ValueError(f"video {self.path}: frame size {(w, h)} differs from the first frame's {self._size}")
        frame = np.ascontiguousarray(rgb[: self._size[1], : self._size[0], ::-1])  # RGB -> BGR for OpenCV
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
