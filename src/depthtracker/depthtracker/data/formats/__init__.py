"""Readers of public dataset layouts into plain per-image records (COCO now; GOT-10k, LaSOT, MOTChallenge later)."""

from depthtracker.data.formats.coco import CocoDataset, CocoImage, read_coco

__all__ = ["CocoDataset", "CocoImage", "read_coco"]
