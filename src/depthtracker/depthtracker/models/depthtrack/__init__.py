"""DepthTrack: multi-camera Mixture-of-Experts transformer with depth and single-target heads (DESIGN.md §4).

``DepthTrack(DepthTrackConfig.from_preset("edge"))(images, intrinsics, extrinsics, template, search)``
-> ``DepthTrackOutput``; ``DepthTrackCriterion(config)(output, depth=..., boxes=..., box_valid=...)``;
``decode_sot(maps, search_size) -> list[SOTCandidates]``; ``DepthTrackPredictor`` for images and checkpoints.
"""

from depthtracker.models.depthtrack.config import PRESETS, DepthTrackConfig, DepthTrackRuntimeConfig
from depthtracker.models.depthtrack.heads import SOTMaps
from depthtracker.models.depthtrack.losses import DepthTrackCriterion
from depthtracker.models.depthtrack.model import DepthTrack, DepthTrackOutput
from depthtracker.models.depthtrack.postprocess import SOTCandidates, decode_sot, depth_to_image

__all__ = ["PRESETS", "DepthTrack", "DepthTrackConfig", "DepthTrackCriterion", "DepthTrackOutput",
           "DepthTrackRuntimeConfig", "SOTCandidates", "SOTMaps", "decode_sot", "depth_to_image"]
