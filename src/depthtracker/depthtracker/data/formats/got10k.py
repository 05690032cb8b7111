"""GOT-10k folder layout (Huang et al. 2019, http://got-10k.aitestunion.com) -> :class:`SOTSequence` records.

Layout::

    ROOT/{train,val,test}/list.txt                      sequence names, one per line (optional)
    ROOT/{split}/GOT-10k_Train_000001/00000001.jpg ...  frames
                                     groundtruth.txt    x,y,w,h per frame (test split: first frame only)
                                     absence.label      1 = target absent, per frame (train/val)
                                     cover.label        visible fraction class 0..8 per frame (0 = fully covered)

``read_got10k(ROOT, "val")`` or ``read_got10k(ROOT/val)``. A sequence with a single groundtruth line (the test
split) gets NaN boxes and ``visible = False`` after frame 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from depthtracker.data.formats.sot_sequence import SOTSequence, read_box_file, read_flag_file

__all__ = ["read_got10k"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _sequence_names(split_dir: Path) -> list[str]:
    listing = split_dir / "list.txt"
    if listing.is_file():
        names = [n.strip() for n in listing.read_text().splitlines() if n.strip()]
        missing = [n for n in names if not (split_dir / n).is_dir()]
        if missing:
            raise ValueError(f"{listing} lists sequences missing from {split_dir}: {missing[:5]}")
        return names
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and (p / "groundtruth.txt").is_file())


def read_got10k(root: str | os.PathLike[str], split: str | None = None) -> list[SOTSequence]:
    """All sequences of a GOT-10k split folder (``root/split``, or ``root`` itself when ``split`` is None)."""
    split_dir = Path(root) / split if split else Path(root)
    if not split_dir.is_dir():
        raise ValueError(f"GOT-10k folder {split_dir} does not exist")
    names = _sequence_names(split_dir)
    if not names:
        raise ValueError(f"{split_dir} holds no GOT-10k sequence (folders with groundtruth.txt)")
    out = []
    for name in names:
        d = split_dir / name
        frames = tuple(sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if not frames:
            raise ValueError(f"GOT-10k sequence {d} has no frames")
        if not (d / "groundtruth.txt").is_file():
            raise ValueError(f"GOT-10k sequence {d} has no groundtruth.txt")
        boxes = read_box_file(d / "groundtruth.txt")
        t = len(frames)
        if boxes.shape[0] == 1 and t > 1:  # test split: only the initial box is public
            boxes = np.concatenate([boxes, np.full((t - 1, 4), np.nan, np.float32)])
            visible = np.zeros(t, bool)
            visible[0] = True
        elif boxes.shape[0] != t:
            raise ValueError(f"{d / 'groundtruth.txt'} has {boxes.shape[0]} boxes for {t} frames")
        else:
            visible = np.ones(t, bool)
            if (d / "absence.label").is_file():
                visible &= read_flag_file(d / "absence.label", t) == 0
            if (d / "cover.label").is_file():
                visible &= read_flag_file(d / "cover.label", t) > 0
        out.append(SOTSequence(name, frames, boxes, visible))
    return out
