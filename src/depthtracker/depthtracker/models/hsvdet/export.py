"""ONNX export of HSV-DET (network + box decoding) for ONNX Runtime and TensorRT users.

The exported graph maps ``images (B, 3, H, W)`` float32 RGB in [0, 1] to

* ``boxes (B, A, 4)`` float32 xyxy pixels of the network input (not clipped: clip to the image), and
* ``scores (B, A, num_classes)`` float32 sigmoid class scores,

with a dynamic batch axis and ``H, W`` fixed at export time (the padding to a multiple of 32 and the anchor grid are
baked in). NMS is not in the graph: TensorRT users append their NMS plugin (e.g. EfficientNMS) or ONNX's
``NonMaxSuppression``, and Python users call :func:`depthtracker.models.hsvdet.postprocess.nms` on the outputs; this
keeps the graph free of data-dependent shapes and identical to the PyTorch decode, which the check compares.

The sparse global blocks export through their batched PyTorch path (TopK, GatherElements, ScatterElements); random
selection has no deterministic graph and is refused.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from depthtracker.models.hsvdet.model import HSVDet
from depthtracker.models.hsvdet.postprocess import decode

__all__ = ["DecodedHSVDet", "export_onnx", "check_onnx", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17  # supported by TensorRT 8.6+ and every current ONNX Runtime; has LayerNormalization


class DecodedHSVDet(nn.Module):
    """``images (B, 3, H, W)`` -> ``(boxes (B, A, 4) xyxy px, scores (B, A, nc))``: the network plus decoding."""

    def __init__(self, model: HSVDet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return decode(self.model(images))


def export_onnx(model: HSVDet, path: str | os.PathLike[str], height: int | None = None, width: int | None = None,
                opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Write ``model`` (put in eval mode, on the CPU) with decoding to ``path``; returns the path.

    ``height``/``width`` default to ``model.config.input_height/input_width``.
    """
    if model.config.selection == "random" and model.config.sgb_levels:
        raise ValueError("ONNX export needs a deterministic token selection; got selection='random'")
    cfg = model.config
    h, w = height or cfg.input_height, width or cfg.input_width
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    wrapper = DecodedHSVDet(model).eval().cpu()
    dummy = torch.rand(2 if dynamic_batch else 1, 3, h, w)
    axes = {"images": {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}} if dynamic_batch else None
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter warns about its own deprecation and about traced shape arithmetic, which is
            # static here by design (H, W fixed at export)
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (dummy,), str(path), input_names=["images"], output_names=["boxes", "scores"],
                              opset_version=opset, dynamic_axes=axes, dynamo=False, do_constant_folding=True)
    finally:
        model.train(was_training)
    return path


def check_onnx(model: HSVDet, path: str | os.PathLike[str], images: torch.Tensor) -> float:
    """Largest absolute difference between ONNX Runtime (CPU) and PyTorch on ``images`` over boxes and scores.

    Boxes are compared in pixels divided by the input's larger side, so one tolerance serves boxes and scores.
    """
    import onnxruntime as ort

    model.eval()
    with torch.no_grad():
        ref_boxes, ref_scores = DecodedHSVDet(model)(images)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    boxes, scores = session.run(["boxes", "scores"], {"images": images.cpu().numpy().astype(np.float32)})
    side = float(max(images.shape[-2:]))
    return float(max(np.abs(boxes - ref_boxes.numpy()).max() / side, np.abs(scores - ref_scores.numpy()).max()))
