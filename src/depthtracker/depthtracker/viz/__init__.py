"""Drawing for people: depth colour maps, boxes with ids, camera mosaics, contact sheets and videos."""

from depthtracker.viz.draw import colorize_depth, draw_boxes, mosaic
from depthtracker.viz.video import VideoWriter

__all__ = ["colorize_depth", "draw_boxes", "mosaic", "VideoWriter"]
