"""HSV-DET: YOLOv8-style detector with gated sparse global blocks (DESIGN.md §4, seed 003).

``HSVDet(HSVDetConfig.from_preset("n"))(images) -> HSVDetOutput``; ``HSVDetCriterion(config)(output, targets)``;
``postprocess(output, config, image_sizes) -> list[Detections]``; ``export_onnx`` / ``check_onnx``;
``HSVDetPredictor.from_checkpoint(path).predict(images)`` for camera images.
"""

from depthtracker.models.hsvdet.config import PRESETS, HSVDetConfig, HSVDetRuntimeConfig
from depthtracker.models.hsvdet.losses import HSVDetCriterion
from depthtracker.models.hsvdet.model import HSVDet, HSVDetOutput
from depthtracker.models.hsvdet.postprocess import decode, nms, postprocess
from depthtracker.models.hsvdet.predictor import HSVDetPredictor

__all__ = ["PRESETS", "HSVDet", "HSVDetConfig", "HSVDetCriterion", "HSVDetOutput", "HSVDetPredictor",
           "HSVDetRuntimeConfig", "decode", "nms", "postprocess"]
