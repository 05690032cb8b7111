"""A single-object tracking sequence read from a public layout (GOT-10k, LaSOT), and its training tracks.

Boxes are ``[x1, y1, x2, y2]`` pixels (``depthtracker.types`` convention); both benchmarks store
``[x, y, w, h]`` with the top-left corner, converted without a +-1 shift, as the reference toolkits
(got10k-toolkit, pytracking) read them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["SOTSequence", "SOTTrack", "read_box_file", "read_flag_file", "sequence_tracks"]


@dataclass(frozen=True, eq=False)
class SOTTrack:
    """One target through a sequence, as training pairs are drawn from it: ``frames (n,)`` int64 frame indices
    where it is usable, ``boxes (n, 4)`` float32 xyxy source pixels, ``image(frame) -> (H, W, 3) uint8 RGB``."""

    name: str
    frames: np.ndarray
    boxes: np.ndarray
    image: Callable[[int], np.ndarray]


@dataclass(frozen=True, eq=False)
class SOTSequence:
    """``frames`` image paths in order; ``boxes (T, 4)`` float32 xyxy (NaN rows where no box is given);
    ``visible (T,)`` bool (target present and not fully occluded)."""

    name: str
    frames: tuple[Path, ...]
    boxes: np.ndarray
    visible: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    def image(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 RGB; a missing or unreadable file is a ``ValueError``."""
        path = self.frames[index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read frame {path} of sequence {self.name}: missing or not an image")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_box_file(path: str | os.PathLike[str]) -> np.ndarray:
    """``x, y, w, h`` per line (comma, tab or space separated) -> ``(T, 4)`` float32 xyxy; ``ValueError`` naming
    the file and line on anything malformed (wrong count, not a number, negative size)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read box file {path}: {exc.strerror}") from exc
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.replace(",", " ").replace("\t", " ").split()
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path}:{n}: expected 4 numbers 'x,y,w,h', got {line!r}") from None
        if len(vals) != 4:
            raise ValueError(f"{path}:{n}: expected 4 numbers 'x,y,w,h', got {len(vals)} in {line!r}")
        if np.isfinite(vals).all() and (vals[2] < 0 or vals[3] < 0):
            raise ValueError(f"{path}:{n}: negative box size w={vals[2]}, h={vals[3]}")
        rows.append(vals)
    if not rows:
        raise ValueError(f"box file {path} holds no boxes")
    b = np.array(rows, np.float64)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1).astype(np.float32)


def read_flag_file(path: str | os.PathLike[str], length: int) -> np.ndarray:
    """Integers separated by commas or newlines -> ``(length,)`` int64; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read label file {path}: {exc.strerror}") from exc
    try:
        vals = np.array([int(float(t)) for t in text.replace(",", " ").split()], np.int64)
    except ValueError:
        raise ValueError(f"{path}: expected integers separated by commas or newlines") from None
    if vals.shape[0] != length:
        raise ValueError(f"{path}: {vals.shape[0]} values for {length} frames")
    return vals


def sequence_tracks(sequences: list[SOTSequence], min_box_px: float = 4.0) -> list[SOTTrack]:
    """Training tracks (frames where the target is visible with both sides >= ``min_box_px``) for
    :class:`~depthtracker.data.depth_datasets.DepthTrackDataset`'s ``sot_tracks``."""
    out = []
    for seq in sequences:
        wh = seq.boxes[:, 2:] - seq.boxes[:, :2]
        with np.errstate(invalid="ignore"):
            ok = seq.visible & np.isfinite(seq.boxes).all(1) & (wh >= min_box_px).all(1)
        frames = np.flatnonzero(ok).astype(np.int64)
        if frames.size:
            out.append(SOTTrack(seq.name, frames, seq.boxes[frames], seq.image))
    return out
