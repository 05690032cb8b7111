"""HSV-DET inference on camera images: letterbox, one batched forward pass, NMS, boxes back in source pixels.

Usage::

    predictor = HSVDetPredictor.from_checkpoint("models/hsvdet-n.safetensors")     # sidecar rebuilds the model
    dets = predictor.predict([rgb0, rgb1], camera_ids=[0, 1], stamps_ns=[t, t])   # list[Detections]

The forward pass runs an inference copy of the network (``net``): BatchNorm folded into the convolutions
(``blocks.fold_batchnorm``) and, on the CPU, NHWC (channels-last) tensors, which PyTorch's oneDNN convolutions run
faster (``bench/hsvdet_predict.py`` on a 2-core AMD EPYC, 1 thread: 0.76x the checkpoint network's forward time at
320x256, 0.78x at 640x480). Outputs equal the checkpoint's network up to float rounding; ``model`` stays the
checkpoint's network (export, inspection).

Pre-processing is the training pipeline's (``data.transforms.Letterbox.apply`` into the network input size of the
checkpoint's config, then ``/ 255``): a detector sees at inference exactly the kind of image it was trained on. The
letterbox switch and pad value come from the checkpoint sidecar (``data_manifest.config``, the training data's
``DetectionDataConfig``); checkpoints without it get the training defaults (letterbox, grey 114).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from depthtracker.data.transforms import Letterbox
from depthtracker.models.hsvdet.blocks import fold_batchnorm
from depthtracker.models.hsvdet.config import HSVDetConfig, HSVDetRuntimeConfig
from depthtracker.models.hsvdet.model import HSVDet
from depthtracker.models.hsvdet.postprocess import postprocess
from depthtracker.types import Detections

__all__ = ["HSVDetPredictor", "resolve_device"]

DEFAULT_PREPROCESS = {"letterbox": True, "pad_value": 114}  # DetectionDataConfig's defaults (training pipeline)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class HSVDetPredictor:
    """A trained HSV-DET with its pre- and post-processing.

    Args:
        model: the network (put in eval mode on ``device``); ``predict`` runs a folded copy made here, so weights
            changed in ``model`` afterwards are not seen (make a new predictor).
        letterbox: keep the aspect ratio and pad (True, as in training) or stretch to the input size.
        pad_value: grey level of the letterbox padding, 0..255.
        class_names: names of the class ids (informational; from the checkpoint's data manifest).
        device: where the forward pass runs.
    """

    def __init__(self, model: HSVDet, letterbox: bool = True, pad_value: int = 114,
                 class_names: Sequence[str] = (), device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        # NHWC on the CPU only: measured there; on CUDA the layout is left to cuDNN as trained.
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.net = fold_batchnorm(self.model).to(memory_format=self.memory_format)
        self.config: HSVDetConfig = model.config
        self.letterbox = bool(letterbox)
        self.pad_value = int(pad_value)
        self.class_names = tuple(class_names)
        self.input_size = (self.config.input_height, self.config.input_width)  # (H, W) network input

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu",
                        runtime: HSVDetRuntimeConfig | None = None, **overrides: Any) -> HSVDetPredictor:
        """Rebuild the model from ``path`` (``NAME``, ``NAME.safetensors`` or ``NAME.json``) alone.

        ``runtime`` applies the thresholds and backend of ``config/hsvdet.yaml`` (and its device unless ``device`` is
        given other than ``"cpu"``); ``overrides`` replace post-processing fields (e.g. ``score_threshold=0.001``
        for mAP evaluation).
        """
        from depthtracker.train.checkpoints import load_checkpoint, model_config

        state, sidecar = load_checkpoint(path)
        config: HSVDetConfig = model_config(sidecar, path, "HSV-DET")
        if runtime is not None:
            config = config.with_runtime(runtime)
            if str(device) == "cpu" and runtime.device != "cpu":
                device = runtime.device
        if overrides:
            config = config.replace(**overrides)
        model = HSVDet(config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"checkpoint {path} does not fit the model its sidecar describes: missing "
                             f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
        manifest = sidecar.get("data_manifest") or {}
        data_cfg = manifest.get("config") or {}
        pre = {k: data_cfg.get(k, v) for k, v in DEFAULT_PREPROCESS.items()}
        names = manifest.get("class_names") or ()
        return cls(model, letterbox=pre["letterbox"], pad_value=pre["pad_value"], class_names=names, device=device)

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[Letterbox]]:
        """``(H_i, W_i, 3)`` uint8 RGB images -> batch ``(B, 3, H, W)`` float32 in [0, 1] and one Letterbox each."""
        batch = np.empty((len(images), *self.input_size, 3), np.uint8)  # (B, H, W, 3)
        boxes = []
        for i, image in enumerate(images):
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"predict: image {i} must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
            lb = Letterbox.fit(image.shape[:2], self.input_size, self.letterbox)
            batch[i] = lb.apply(image, self.pad_value)
            boxes.append(lb)
        tensor = torch.from_numpy(batch).permute(0, 3, 1, 2)  # (B, H, W, 3) -> (B, 3, H, W), NHWC in memory
        tensor = tensor.to(self.device).float().div_(255.0)
        return tensor.contiguous(memory_format=self.memory_format), boxes

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray], camera_ids: Sequence[int] | None = None,
                stamps_ns: Sequence[int] | None = None) -> list[Detections]:
        """Detections of each image, boxes xyxy in that image's pixels, by decreasing score.

        All images go through one forward pass (they may differ in size: each has its own letterbox).
        """
        n = len(images)
        cams = list(camera_ids) if camera_ids is not None else [0] * n
        stamps = list(stamps_ns) if stamps_ns is not None else [0] * n
        if len(cams) != n or len(stamps) != n:
            raise ValueError(f"predict: {n} images but {len(cams)} camera_ids and {len(stamps)} stamps_ns")
        if n == 0:
            return []
        batch, boxes = self.preprocess(images)
        raw = postprocess(self.net(batch), self.config, None, cams, stamps)  # boxes in network-input pixels
        out = []
        for det, lb in zip(raw, boxes, strict=True):
            src = lb.boxes_to_source(det.boxes)
            keep = (src[:, 2] > src[:, 0]) & (src[:, 3] > src[:, 1])  # boxes that lay wholly in the padding vanish
            out.append(Detections(src[keep], det.scores[keep], det.labels[keep], det.camera_id, det.stamp_ns))
        return out
