"""LaSOT folder layout (Fan et al. 2019, http://vision.cs.stonybrook.edu/~lasot) -> :class:`SOTSequence` records.

Layout::

    ROOT/<category>/<category>-<k>/img/00000001.jpg ...   frames
                                  groundtruth.txt         x,y,w,h per frame
                                  full_occlusion.txt      0/1 per frame, comma-separated on one line
                                  out_of_view.txt         0/1 per frame, comma-separated on one line
    ROOT/testing_set.txt                                  sequence names of the test split (optional)

``read_lasot(ROOT)`` reads every sequence; ``names=`` (or ``split_file="testing_set.txt"``) restricts them.
A frame is visible unless fully occluded or out of view.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from depthtracker.data.formats.sot_sequence import SOTSequence, read_box_file, read_flag_file

__all__ = ["read_lasot"]


def _all_names(root: Path) -> list[str]:
    names = []
    for cat in sorted(p for p in root.iterdir() if p.is_dir()):
        names += [s.name for s in sorted(cat.iterdir()) if s.is_dir() and (s / "groundtruth.txt").is_file()]
    return names


def read_lasot(root: str | os.PathLike[str], names: Sequence[str] | None = None,
               split_file: str | None = None) -> list[SOTSequence]:
    """Sequences of a LaSOT root (``<category>/<category>-<k>`` folders)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"LaSOT folder {root} does not exist")
    if split_file is not None:
        listing = root / split_file
        if not listing.is_file():
            raise ValueError(f"LaSOT split file {listing} does not exist")
        names = [n.strip() for n in listing.read_text().splitlines() if n.strip()]
    if names is None:
        names = _all_names(root)
    if not names:
        raise ValueError(f"{root} holds no LaSOT sequence (<category>/<category>-<k>/groundtruth.txt)")
    out = []
    for name in names:
        cat = name.rsplit("-", 1)[0]
        d = root / cat / name
        if not d.is_dir():
            raise ValueError(f"LaSOT sequence {name} not found at {d}")
        img = d / "img"
        frames = tuple(sorted(img.glob("*.jpg"))) if img.is_dir() else ()
        if not frames:
            raise ValueError(f"LaSOT sequence {d} has no frames in img/")
        if not (d / "groundtruth.txt").is_file():
            raise ValueError(f"LaSOT sequence {d} has no groundtruth.txt")
        boxes = read_box_file(d / "groundtruth.txt")
        t = len(frames)
        if boxes.shape[0] != t:
            raise ValueError(f"{d / 'groundtruth.txt'} has {boxes.shape[0]} boxes for {t} frames")
        visible = np.ones(t, bool)
        for flag in ("full_occlusion.txt", "out_of_view.txt"):
            if (d / flag).is_file():
                visible &= read_flag_file(d / flag, t) == 0
        out.append(SOTSequence(name, frames, boxes, visible))
    return out
