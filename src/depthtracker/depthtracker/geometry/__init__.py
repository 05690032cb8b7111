"""Box conversions and pinhole camera projection (the one place these live)."""

from depthtracker.geometry.boxes import (
    box_area,
    box_iou,
    box_median_depth,
    clip_boxes,
    cxcyah_to_xyxy,
    cxcywh_to_xyxy,
    xywh_to_xyxy,
    xyxy_to_cxcyah,
    xyxy_to_cxcywh,
    xyxy_to_xywh,
)
from depthtracker.geometry.camera import intrinsics_from_fov, look_at, pixel_rays, project_points
from depthtracker.geometry.rotations import matrix_to_quaternion, quaternion_to_matrix

__all__ = [
    "box_area",
    "box_iou",
    "box_median_depth",
    "clip_boxes",
    "cxcyah_to_xyxy",
    "cxcywh_to_xyxy",
    "xywh_to_xyxy",
    "xyxy_to_cxcyah",
    "xyxy_to_cxcywh",
    "xyxy_to_xywh",
    "intrinsics_from_fov",
    "look_at",
    "pixel_rays",
    "project_points",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
]
