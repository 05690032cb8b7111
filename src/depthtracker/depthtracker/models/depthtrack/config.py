"""``DepthTrackConfig``: architecture, loss weights and decoding of DepthTrack; presets ``edge`` and ``base``.

Architectures are Python (STYLE rule 9): :data:`PRESETS` maps a preset name to the fields it sets and
:meth:`DepthTrackConfig.from_preset` applies overrides on top. ``edge`` is sized for real time on a 2-core CPU
(one 320x240 camera downscaled to 160x120, 8-pixel patches: 300 tokens); ``base`` for a GPU (several cameras at
384x512 with 16-pixel patches, NSA attention once the multi-camera sequence passes ``nsa_dense_below`` tokens).

``DepthTrackRuntimeConfig`` is what ``config/depthtrack.yaml`` holds (inference-time choices; the architecture
itself always comes from the checkpoint sidecar).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from depthtracker.models.attention import ATTENTION_KINDS, AttentionConfig
from depthtracker.models.moe import GROUPED, MoEConfig

__all__ = ["DepthTrackConfig", "DepthTrackRuntimeConfig", "PRESETS", "TASK_DEPTH", "TASK_SOT"]

TASK_DEPTH, TASK_SOT = 0, 1  # router ids of the two tasks (task-conditioned MoE routing)

PRESETS: dict[str, dict[str, Any]] = {
    "edge": {"dim": 96, "depth": 4, "heads": 3, "kv_heads": 1, "attention": "gqa", "num_experts": 4, "top_k": 2,
             "expert_hidden": 192, "shared_hidden": 192, "patch": 8, "input_height": 120, "input_width": 160,
             "template_size": 64, "search_size": 128},
    "base": {"dim": 384, "depth": 12, "heads": 6, "kv_heads": 2, "attention": "nsa", "num_experts": 8, "top_k": 2,
             "expert_hidden": 768, "shared_hidden": 768, "patch": 16, "input_height": 384, "input_width": 512,
             "template_size": 128, "search_size": 256},
}


def _check(name: str, value: object, lo: float, hi: float, integer: bool = False) -> None:
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or not lo <= value <= hi:
        what = "an integer" if integer else "a number"
        raise ValueError(f"DepthTrackConfig.{name} must be {what} in [{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class DepthTrackConfig:
    """DepthTrack (DESIGN.md §4). Defaults are preset ``edge``."""

    preset: str = "edge"  # preset the architecture came from (informational once built)
    # -- backbone --
    dim: int = 96  # token width
    depth: int = 4  # transformer blocks
    heads: int = 3  # attention heads (dim % heads == 0)
    kv_heads: int = 1  # key/value heads for gqa / nsa (must divide heads)
    attention: str = "gqa"  # token mixer: mha | mqa | gqa | nsa
    nsa_n_select: int = 4  # nsa: KV blocks per query block (itself included)
    nsa_tile: int = 8  # nsa: tile side in patches (block = tile**2 tokens)
    nsa_dense_below: int = 1024  # nsa: shorter sequences run dense attention
    attention_backend: str = "auto"  # nsa kernels: auto | triton | naive
    num_experts: int = 4  # routed experts per MoE layer
    top_k: int = 2  # experts per token
    expert_hidden: int = 192  # hidden width of a routed expert
    shared_hidden: int = 192  # hidden width of the shared expert (0 = none)
    task_routers: bool = True  # one router per task (depth, tracking) over shared experts (M3ViT)
    moe_grouped: str = "auto"  # expert matmuls: auto | grouped | loop
    patch: int = 8  # patch side, pixels; inputs must be multiples of it
    input_height: int = 120  # network input per camera, pixels (camera images are resized to it)
    input_width: int = 160
    # -- depth head --
    min_depth: float = 0.1  # depth range the head can output, metres: a sigmoid spans log(min)..log(max)
    max_depth: float = 40.0
    refine_channels: int = 16  # channels of the full-resolution refinement (image stem + upsampled tokens)
    # -- single-target head --
    template_size: int = 64  # template crop side, pixels (multiple of patch)
    search_size: int = 128  # search crop side, pixels (multiple of patch)
    template_factor: float = 2.0  # template crop side = factor * sqrt(w * h) of the target box (OSTrack: 2)
    search_factor: float = 4.0  # search crop side = factor * sqrt(w * h) of the previous box (OSTrack: 4)
    head_channels: int = 64  # channels of the centre/size/offset/uncertainty tower
    # -- loss weights (DETR-style name -> weight) --
    depth_weight: float = 1.0  # SILog depth loss
    silog_lambda: float = 0.5  # variance weight of SILog: < 1 keeps the loss scale-aware (Depth Anything V2: 0.5)
    heatmap_weight: float = 1.0  # CenterNet focal loss on the centre heatmap
    box_l1_weight: float = 5.0  # L1 of the normalised (cx, cy, w, h) at the true centre (OSTrack: 5)
    uncertainty_weight: float = 0.1  # Laplace NLL of the box error (error detached: trains the scale only)
    giou_weight: float = 2.0  # GIoU of the box at the true centre (OSTrack: 2)
    aux_weight: float = 0.01  # MoE load-balance loss, summed over layers (Switch: 0.01)
    # -- decoding --
    max_candidates: int = 5  # candidate boxes returned per search crop (peaks of the heatmap)

    def __post_init__(self) -> None:
        ints = {"dim": (8, 4096), "depth": (1, 64), "heads": (1, 64), "kv_heads": (1, 64), "nsa_n_select": (1, 4096),
                "nsa_tile": (1, 64), "nsa_dense_below": (0, 10**9), "num_experts": (1, 256), "top_k": (1, 256),
                "expert_hidden": (1, 65536), "shared_hidden": (0, 65536), "patch": (2, 64),
                "input_height": (8, 8192), "input_width": (8, 8192), "refine_channels": (1, 256),
                "template_size": (8, 1024), "search_size": (8, 2048), "head_channels": (1, 1024),
                "max_candidates": (1, 1000)}
        for name, (lo, hi) in ints.items():
            _check(name, getattr(self, name), lo, hi, integer=True)
        for name, (lo, hi) in {"min_depth": (1e-4, 1e4), "max_depth": (1e-4, 1e5), "template_factor": (1, 16),
                               "search_factor": (1, 32), "depth_weight": (0, 1e3), "silog_lambda": (0, 1),
                               "heatmap_weight": (0, 1e3), "box_l1_weight": (0, 1e3),
                               "uncertainty_weight": (0, 1e3), "giou_weight": (0, 1e3),
                               "aux_weight": (0, 1e3)}.items():
            _check(name, getattr(self, name), lo, hi)
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"DepthTrackConfig.attention={self.attention!r}: expected one of {ATTENTION_KINDS}")
        if self.moe_grouped not in GROUPED:
            raise ValueError(f"DepthTrackConfig.moe_grouped={self.moe_grouped!r}: expected one of {GROUPED}")
        if self.max_depth <= self.min_depth:
            raise ValueError(f"DepthTrackConfig.max_depth={self.max_depth} must exceed min_depth={self.min_depth}")
        for name in ("input_height", "input_width", "template_size", "search_size"):
            if getattr(self, name) % self.patch:
                raise ValueError(f"DepthTrackConfig.{name}={getattr(self, name)} must be a multiple of "
                                 f"patch={self.patch}")
        self.attention_config()  # validates heads / kv_heads / backend
        self.moe_config()

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> DepthTrackConfig:
        """The config of preset ``name`` (``edge`` | ``base``) with ``overrides`` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown DepthTrack preset {name!r}; presets: {sorted(PRESETS)}")
        return cls(**{"preset": name, **PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DepthTrackConfig:
        """Rebuild from a checkpoint sidecar's ``model_config`` (unknown keys are errors, lists become tuples)."""
        from depthtracker.configio import from_mapping

        return from_mapping(cls, data, "DepthTrack model_config")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def attention_config(self) -> AttentionConfig:
        return AttentionConfig(dim=self.dim, heads=self.heads, kind=self.attention, kv_heads=self.kv_heads,
                               nsa_n_select=self.nsa_n_select, nsa_tile=self.nsa_tile,
                               nsa_dense_below=self.nsa_dense_below, backend=self.attention_backend)

    def moe_config(self) -> MoEConfig:
        return MoEConfig(dim=self.dim, hidden=self.expert_hidden, num_experts=self.num_experts, top_k=self.top_k,
                         shared_hidden=self.shared_hidden, num_tasks=2 if self.task_routers else 1,
                         grouped=self.moe_grouped)


@dataclass(frozen=True)
class DepthTrackRuntimeConfig:
    """Inference-time choices (``config/depthtrack.yaml``); the architecture comes from the checkpoint."""

    checkpoint: str = ""  # safetensors checkpoint (+ JSON sidecar); "" = the shipped models/depthtrack-edge
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    score_threshold: float = 0.05  # candidates scoring below this are not returned, [0, 1]
    max_candidates: int = 5  # candidate boxes per frame, >= 1
    colormap_near: float = 0.5  # colour PNGs: depth of the warm end of the colour map, metres (> 0)
    colormap_far: float = 15.0  # colour PNGs: depth of the cold end, metres (> colormap_near)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold!r}")
        if isinstance(self.max_candidates, bool) or not isinstance(self.max_candidates, int) or self.max_candidates < 1:
            raise ValueError(f"max_candidates must be an integer >= 1, got {self.max_candidates!r}")
        if not 0 < self.colormap_near < self.colormap_far:
            raise ValueError(f"colormap_near and colormap_far must satisfy 0 < near < far, got "
                             f"{self.colormap_near!r}, {self.colormap_far!r}")
