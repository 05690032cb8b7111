"""sensor_msgs/Image <-> NumPy without cv_bridge, for rosbags' and rclpy's message classes alike.

Reading gives a zero-copy view where the row stride allows it (``np.frombuffer`` semantics): the message's buffer
must outlive the array, or copy it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# encoding -> (dtype, channels)
ENCODINGS: dict[str, tuple[type, int]] = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "mono8": (np.uint8, 1),
    "32FC1": (np.float32, 1),
    "16UC1": (np.uint16, 1),
}


class ImageEncodingError(ValueError):
    """An Image message cannot be read: unsupported encoding, or sizes that do not add up."""


def image_to_array(msg: Any, source: str = "image") -> np.ndarray:
    """Pixels of an Image message: (H, W, 3) for colour encodings, (H, W) for one channel; native byte order."""
    if msg.encoding not in ENCODINGS:
        raise ImageEncodingError(
            f"{source}: unsupported image encoding {msg.encoding!r}; supported: {sorted(ENCODINGS)}"
        )
    dtype, channels = ENCODINGS[msg.encoding]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row = msg.width * channels * dt.itemsize
    buf = np.frombuffer(msg.data, np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data.view(np.uint8)
    if msg.step < row or buf.size < msg.step * msg.height:
        raise ImageEncodingError(
            f"{source}: {msg.width}x{msg.height} {msg.encoding} image has step {msg.step} and {buf.size} bytes; "
            f"expected step >= {row} and {msg.step * msg.height} bytes"
        )
    rows = buf[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row]
    arr = rows.view(dt) if msg.step == row else np.ascontiguousarray(rows).view(dt)
    arr = arr.reshape(msg.height, msg.width, channels) if channels > 1 else arr.reshape(msg.height, msg.width)
    return arr.astype(dtype, copy=False)  # no copy unless the message was big-endian


def array_to_image_fields(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """Fields ``height, width, encoding, is_bigendian, step, data`` (``data`` as bytes) for an Image message."""
    if encoding not in ENCODINGS:
        raise ImageEncodingError(f"unsupported image encoding {encoding!r}; supported: {sorted(ENCODINGS)}")
    dtype, channels = ENCODINGS[encoding]
    a = np.asarray(array)
    want = a.shape[:2] + ((channels,) if channels > 1 else ())
    if a.dtype != np.dtype(dtype) or a.shape != want:
        raise ImageEncodingError(
            f"{encoding} needs a {np.dtype(dtype)} array of shape (H, W{', ' + str(channels) if channels > 1 else ''}),"
            f" got {a.dtype} {a.shape}"
        )
    a = np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))
    return {
        "height": int(a.shape[0]),
        "width": int(a.shape[1]),
        "encoding": encoding,
        "is_bigendian": 0,
        "step": int(a.shape[1] * channels * a.itemsize),
        "data": a.tobytes(),
    }
