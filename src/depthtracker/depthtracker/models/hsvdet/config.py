"""``HSVDetConfig``: architecture, ablation switches, loss weights, assignment and post-processing of HSV-DET.

Architectures are Python (STYLE rule 9): :data:`PRESETS` maps a preset name to the fields it sets, and
:meth:`HSVDetConfig.from_preset` builds a config from one plus overrides. No YAML-driven architecture, no ``eval``.
The preset widths and depths are those of YOLOv8 (n: width 0.25, depth 0.33; s: width 0.50, depth 0.33;
l: width 1.00, depth 1.00 with channels capped at 512), the layer plan is ours (see ``model.py``).

``HSVDetRuntimeConfig`` holds the inference-time fields read from ``config/hsvdet.yaml`` (ROS params layout); the
architecture itself comes from the checkpoint's sidecar, and :meth:`HSVDetConfig.with_runtime` applies the
thresholds of the YAML to it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["HSVDetConfig", "HSVDetRuntimeConfig", "PRESETS", "SELECTIONS", "GATINGS", "PLACEMENTS", "LEVELS"]

SELECTIONS = ("random", "l2", "sq_l2")  # token selection of the sparse global block
GATINGS = ("none", "fixed", "learnable")  # residual gate: x + block(x), x + c*block(x), x + alpha*block(x)
# where the blocks sit: on the neck's outputs just before the head (the seed's layout), or on the backbone's
# features before the neck, whose top-down path then carries what they add to every head level, P3 included
PLACEMENTS = ("neck", "backbone")
LEVELS = (3, 4, 5)  # pyramid levels P3, P4, P5 (strides 8, 16, 32)
_BASE_CHANNELS = (64, 128, 256, 512, 1024)  # stem, P2, P3, P4, P5 channels at width 1.0 (YOLOv8's plan)

# Presets: n and s train on the 2-core CPU; l is for the GPU (its SGB uses the Triton kernel there).
PRESETS: dict[str, dict[str, Any]] = {
    "n": {"width_multiple": 0.25, "depth_multiple": 0.33, "max_channels": 1024, "sgb_heads": 4},
    "s": {"width_multiple": 0.50, "depth_multiple": 0.33, "max_channels": 1024, "sgb_heads": 8},
    "l": {"width_multiple": 1.00, "depth_multiple": 1.00, "max_channels": 512, "sgb_heads": 8},
}


def _check(name: str, value: object, lo: float, hi: float, integer: bool = False, lo_open: bool = False) -> None:
    kind = (int,) if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        what = "an integer" if integer else "a number"
        raise ValueError(f"HSVDetConfig.{name} must be {what} in {'(' if lo_open else '['}{lo}, {hi}], got {value!r}")


def _make_divisible(x: float, divisor: int = 8) -> int:
    return int(math.ceil(x / divisor) * divisor)


@dataclass(frozen=True)
class HSVDetConfig:
    """HSV-DET (DESIGN.md §4). Defaults are preset ``n`` with SGB at P4 and P5 (the seed's configuration)."""

    # -- architecture --
    preset: str = "n"  # name of the preset the widths came from (informational once built; see PRESETS)
    width_multiple: float = 0.25  # channel multiplier on (64, 128, 256, 512, 1024), in (0, 2]
    depth_multiple: float = 0.33  # C2f repeat multiplier on (3, 6, 6, 3), in (0, 2]
    max_channels: int = 1024  # channel cap before the width multiplier (YOLOv8 l caps at 512)
    num_classes: int = 3  # object classes (the synthetic world has box, sphere, cylinder)
    input_width: int = 320  # network input width, px; images are resized to it (padded to a multiple of 32 inside)
    input_height: int = 240  # network input height, px
    strides: tuple[int, ...] = (8, 16, 32)  # strides of P3, P4, P5; fixed by the layer plan
    reg_max: int = 16  # DFL bins per box side: distances 0..reg_max-1 strides (YOLOv8: 16)
    pad_value: float = 114 / 255  # fill of the bottom/right padding to a multiple of 32 (YOLO letterbox grey)
    # -- sparse global block (ablation switches) --
    sgb_levels: tuple[int, ...] = (4, 5)  # levels with a gated sparse global block: subset of (3, 4, 5); () = YOLO
    sgb_placement: str = "neck"  # neck (N_l -> head, the seed's layout) | backbone (P_l -> neck); see PLACEMENTS
    sgb_topk: int | None = 512  # tokens selected per image and level; None = all tokens (dense global attention)
    sgb_heads: int = 4  # attention heads; every SGB level's channels must divide by it
    selection: str = "sq_l2"  # token selection: random | l2 (norm) | sq_l2 (squared norm; same ranking as l2)
    gating: str = "learnable"  # residual gate: none (x + b(x)) | fixed (x + gate_value*b(x)) | learnable (alpha=0)
    gate_value: float = 0.5  # the constant gate of gating="fixed"
    sgb_backend: str = "auto"  # auto (Triton kernel on CUDA, batched PyTorch on CPU) | triton | naive
    # -- loss (YOLOv8's default gains: box 7.5, cls 0.5, dfl 1.5) --
    box_weight: float = 7.5  # weight of the CIoU box loss
    cls_weight: float = 0.5  # weight of the BCE class loss
    dfl_weight: float = 1.5  # weight of the distribution focal loss
    # -- task-aligned assignment (TOOD; YOLOv8 uses topk 10, alpha 0.5, beta 6.0) --
    tal_topk: int = 10  # anchors per ground-truth box
    tal_alpha: float = 0.5  # exponent of the class score in the alignment metric s^alpha * IoU^beta
    tal_beta: float = 6.0  # exponent of the IoU in the alignment metric
    # -- post-processing --
    score_threshold: float = 0.25  # least class score kept; use ~0.001 for mAP evaluation
    nms_iou: float = 0.7  # class-aware NMS IoU threshold (YOLOv8's default)
    max_detections: int = 300  # detections kept per image after NMS
    pre_nms_topk: int = 3000  # candidates entering NMS per image, best first
    multi_label: bool = False  # one candidate per (anchor, class) above threshold, else the best class per anchor

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"HSVDetConfig.preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        _check("width_multiple", self.width_multiple, 0.0, 2.0, lo_open=True)
        _check("depth_multiple", self.depth_multiple, 0.0, 2.0, lo_open=True)
        _check("max_channels", self.max_channels, 16, 4096, integer=True)
        _check("num_classes", self.num_classes, 1, 10_000, integer=True)
        _check("input_width", self.input_width, 32, 8192, integer=True)
        _check("input_height", self.input_height, 32, 8192, integer=True)
        if tuple(self.strides) != (8, 16, 32):
            raise ValueError(f"HSVDetConfig.strides must be (8, 16, 32) (fixed by the layer plan), got {self.strides}")
        _check("reg_max", self.reg_max, 2, 64, integer=True)
        _check("pad_value", self.pad_value, 0.0, 1.0)
        levels = tuple(self.sgb_levels)
        if any(lv not in LEVELS for lv in levels) or len(set(levels)) != len(levels):
            raise ValueError(f"HSVDetConfig.sgb_levels must be distinct values of {LEVELS}, got {self.sgb_levels!r}")
        if self.sgb_placement not in PLACEMENTS:
            raise ValueError(f"HSVDetConfig.sgb_placement must be one of {PLACEMENTS}, got {self.sgb_placement!r}")
        if self.sgb_topk is not None:
            _check("sgb_topk", self.sgb_topk, 1, 10**7, integer=True)
        _check("sgb_heads", self.sgb_heads, 1, 256, integer=True)
        for lv in levels:
            c = self.level_channels[lv]
            if c % self.sgb_heads:
                raise ValueError(f"HSVDetConfig.sgb_heads={self.sgb_heads} must divide the {c} channels of P{lv}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"HSVDetConfig.selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.gating not in GATINGS:
            raise ValueError(f"HSVDetConfig.gating must be one of {GATINGS}, got {self.gating!r}")
        _check("gate_value", self.gate_value, 0.0, 10.0)
        if self.sgb_backend not in ("auto", "triton", "naive"):
            raise ValueError(f"HSVDetConfig.sgb_backend must be auto, triton or naive, got {self.sgb_backend!r}")
        for name in ("box_weight", "cls_weight", "dfl_weight"):
            _check(name, getattr(self, name), 0.0, 1e3)
        _check("tal_topk", self.tal_topk, 1, 1000, integer=True)
        _check("tal_alpha", self.tal_alpha, 0.0, 20.0)
        _check("tal_beta", self.tal_beta, 0.0, 20.0)
        _check("score_threshold", self.score_threshold, 0.0, 1.0)
        _check("nms_iou", self.nms_iou, 0.0, 1.0, lo_open=True)
        _check("max_detections", self.max_detections, 1, 100_000, integer=True)
        _check("pre_nms_topk", self.pre_nms_topk, 1, 1_000_000, integer=True)
        if not isinstance(self.multi_label, bool):
            raise ValueError(f"HSVDetConfig.multi_label must be true or false, got {self.multi_label!r}")
        object.__setattr__(self, "strides", tuple(self.strides))
        object.__setattr__(self, "sgb_levels", levels)

    # -- derived --
    def channels(self, base: int) -> int:
        """Channels of a layer with ``base`` channels at width 1.0: capped, scaled, rounded up to a multiple of 8."""
        return _make_divisible(min(base, self.max_channels) * self.width_multiple)

    def repeats(self, base: int) -> int:
        """Bottleneck repeats of a C2f with ``base`` repeats at depth 1.0 (at least 1)."""
        return max(round(base * self.depth_multiple), 1)

    @property
    def widths(self) -> tuple[int, int, int, int, int]:
        """Channels of the stem, P2, P3, P4 and P5 (n: 16, 32, 64, 128, 256)."""
        return tuple(self.channels(c) for c in _BASE_CHANNELS)  # type: ignore[return-value]

    @property
    def level_channels(self) -> dict[int, int]:
        """Channels of the backbone's and the neck's output at each level (the same): {3: C3, 4: C4, 5: C5}."""
        w = self.widths
        return {3: w[2], 4: w[3], 5: w[4]}

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> HSVDetConfig:
        """Config of preset ``name`` (``n``, ``s``, ``l``) with ``overrides`` applied (any field)."""
        if name not in PRESETS:
            raise ValueError(f"unknown HSV-DET preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{"preset": name, **PRESETS[name], **overrides})

    def replace(self, **changes: Any) -> HSVDetConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping (tuples as lists); ``from_dict`` inverts it (checkpoint sidecars)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HSVDetConfig:
        from depthtracker.configio import from_mapping

        return from_mapping(cls, data, "HSVDetConfig")

    def with_runtime(self, runtime: HSVDetRuntimeConfig) -> HSVDetConfig:
        """This architecture with the inference-time thresholds of ``runtime``."""
        return self.replace(score_threshold=runtime.score_threshold, nms_iou=runtime.nms_iou,
                            max_detections=runtime.max_detections, multi_label=runtime.multi_label,
                            sgb_backend=runtime.sgb_backend)


@dataclass(frozen=True)
class HSVDetRuntimeConfig:
    """Inference-time settings of HSV-DET, mirrored by ``config/hsvdet.yaml``."""

    preset: str = "n"  # preset used when no checkpoint is given (random weights: for tests and smoke runs only)
    checkpoint: str = ""  # safetensors checkpoint (its JSON sidecar rebuilds the model); "" = none
    score_threshold: float = 0.25  # least class score published, in [0, 1]
    nms_iou: float = 0.7  # class-aware NMS IoU threshold, in (0, 1]
    max_detections: int = 300  # detections kept per image, >= 1
    multi_label: bool = False  # one candidate per (anchor, class) above threshold, else the best class per anchor
    sgb_backend: str = "auto"  # auto (Triton on CUDA, batched PyTorch on CPU) | triton | naive
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"HSVDetRuntimeConfig.preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if not isinstance(self.checkpoint, str):
            raise ValueError(f"HSVDetRuntimeConfig.checkpoint must be a path string, got {self.checkpoint!r}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"HSVDetRuntimeConfig.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        # the shared fields are validated by HSVDetConfig's own rules
        HSVDetConfig(score_threshold=self.score_threshold, nms_iou=self.nms_iou, max_detections=self.max_detections,
                     multi_label=self.multi_label, sgb_backend=self.sgb_backend)
