"""Camera sources for the ingest node (ROS-free): video files, image folders, V4L2 devices; retry with back-off.

A source is named by a SPEC string:

* ``video:PATH``: a video file read with OpenCV (``cv2.VideoCapture``); ``loop`` restarts it at its end.
* ``folder:DIR``: the images in DIR (``.png .jpg .jpeg .bmp .tif .tiff``) in sorted file-name order.
* ``v4l2:DEVICE``: a camera device (``/dev/video0``, or an index ``0``) through ``cv2.VideoCapture``.
* ``synth``: the synthetic world (rendered by the node itself; ``open_source`` refuses it).

``read()`` returns the next frame as (H, W, 3) uint8 **RGB**, or ``None`` at the end of a finite source; a source
that fails (cannot open, a read error, a device unplugged) raises ``SourceError``. ``RetryingSource`` wraps a source
factory: on failure it closes the source, reports the error and re-opens after an exponential back-off
(``initial_backoff_s`` doubling up to ``max_backoff_s``), so a camera that comes back is picked up again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["SourceError", "SourceSpec", "FrameSource", "VideoSource", "FolderSource", "V4L2Source",
           "RetryingSource", "parse_source_spec", "open_source", "IMAGE_SUFFIXES", "KINDS"]

KINDS = ("video", "folder", "v4l2", "synth")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class SourceError(RuntimeError):
    """A camera source cannot deliver frames (missing file or device, unreadable data); the message says which."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # one of KINDS
    target: str  # path, folder or device; "" for synth


def parse_source_spec(spec: str) -> SourceSpec:
    """``"video:PATH"`` -> ``SourceSpec("video", "PATH")``; ``ValueError`` naming the spec when malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"camera source spec must be a non-empty string, got {spec!r}")
    kind, sep, target = spec.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"camera source {spec!r}: kind must be one of {list(KINDS)} (as in video:PATH, folder:DIR, "
                         "v4l2:/dev/video0, synth)")
    if kind == "synth":
        if target:
            raise ValueError(f"camera source {spec!r}: synth takes no argument")
        return SourceSpec("synth", "")
    if not sep or not target:
        raise ValueError(f"camera source {spec!r}: {kind} needs a target, as in {kind}:PATH")
    return SourceSpec(kind, target)


class FrameSource(Protocol):
    name: str

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint16:  # 16-bit PNG/TIFF: keep the top byte
        return (frame >> 8).astype(np.uint8)
    return frame.astype(np.uint8, copy=False)


class _CaptureSource:
    def __init__(self, target: str | int, name: str, loop: bool) -> None:
        import cv2

        self.name = name
        self.loop = loop
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"{name}: cannot open (missing, busy or not a supported format)")
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def _grab(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        return _to_rgb(_to_uint8(frame)) if ok and frame is not None else None

    def close(self) -> None:
        self._cap.release()


class VideoSource(_CaptureSource):
    """A video file; ``fps`` is the file's nominal rate (0 when unknown)."""

    def __init__(self, path: str | os.PathLike[str], loop: bool = False) -> None:
        if not Path(path).is_file():
            raise SourceError(f"video {path}: no such file")
        super().__init__(str(path), f"video {path}", loop)
        self._frames = 0

    def read(self) -> np.ndarray | None:
        import cv2

        frame = self._grab()
        if frame is None and self.loop and self._frames:  # the end: rewind once (an empty file stays empty)
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._frames = 0
            frame = self._grab()
        if frame is not None:
            self._frames += 1
        return frame


class V4L2Source(_CaptureSource):
    """A camera device: ``/dev/videoN`` or an integer index. A failed read (device unplugged) raises."""

    def __init__(self, device: str) -> None:
        target: str | int = int(device) if device.isdigit() else device
        if isinstance(target, str) and not Path(target).exists():
            raise SourceError(f"v4l2 {device}: no such device")
        super().__init__(target, f"v4l2 {device}", loop=False)

    def read(self) -> np.ndarray | None:
        frame = self._grab()
        if frame is None:
            raise SourceError(f"{self.name}: read failed (device gone?)")
        return frame


class FolderSource:
    """Images of a folder in sorted name order; ``loop`` starts over after the last."""

    def __init__(self, folder: str | os.PathLike[str], loop: bool = False) -> None:
        self.name = f"folder {folder}"
        self.loop = loop
        self.fps = 0.0
        folder = Path(folder)
        if not folder.is_dir():
            raise SourceError(f"{self.name}: no such folder")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"{self.name}: no images ({', '.join(IMAGE_SUFFIXES)})")
        self._next = 0

    def read(self) -> np.ndarray | None:
        import cv2

        if self._next >= len(self.files):
            if not self.loop:
                return None
            self._next = 0
        path = self.files[self._next]
        self._next += 1
        frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if frame is None:
            raise SourceError(f"{self.name}: cannot read image {path.name}")
        return _to_rgb(_to_uint8(frame))

    def close(self) -> None:
        pass


def open_source(spec: str | SourceSpec, loop: bool = False) -> FrameSource:
    """Open the source named by ``spec`` (module docstring); raises ``SourceError`` when it cannot be opened."""
    s = parse_source_spec(spec) if isinstance(spec, str) else spec
    if s.kind == "video":
        return VideoSource(s.target, loop)
    if s.kind == "folder":
        return FolderSource(s.target, loop)
    if s.kind == "v4l2":
        return V4L2Source(s.target)
    raise ValueError(f"open_source cannot open {s.kind!r} sources (the node renders synth itself)")


class RetryingSource:
    """A source that is re-opened after failures, with exponential back-off.

    ``read(now)`` (``now``: monotonic seconds) returns a frame, ``None`` when there is none this time (finished,
    failed, or waiting to retry). Attributes for diagnostics: ``ok`` (the last attempt worked), ``error`` (the last
    failure's message), ``failures`` (count), ``finished`` (a finite source reached its end).
    """

    def __init__(self, factory: Callable[[], FrameSource], initial_backoff_s: float = 0.5,
                 max_backoff_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < initial_backoff_s <= max_backoff_s:
            raise ValueError(f"need 0 < initial_backoff_s <= max_backoff_s, got {initial_backoff_s}, {max_backoff_s}")
        self._factory = factory
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._source: FrameSource | None = None
        self._retry_at = 0.0
        self._backoff = initial_backoff_s
        self.ok = False
        self.error = ""
        self.failures = 0
        self.finished = False

    def read(self, now: float | None = None) -> np.ndarray | None:
        now = self._clock() if now is None else now
        if self.finished or now < self._retry_at:
            return None
        try:
            if self._source is None:
                self._source = self._factory()
            frame = self._source.read()
        except SourceError as exc:
            self._fail(str(exc), now)
            return None
        if frame is None:
            self.finished = True
            self.close()
            return None
        self.ok, self.error, self._backoff = True, "", self.initial_backoff_s
        return frame

    def _fail(self, message: str, now: float) -> None:
        self.close()
        self.ok = False
        self.error = message
        self.failures += 1
        self._retry_at = now + self._backoff
        self._backoff = min(2 * self._backoff, self.max_backoff_s)

    def close(self) -> None:
        if self._source is not None:
            try:
                self._source.close()
            finally:
                self._source = None
