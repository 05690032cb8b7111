"""Train DepthTrack on depthtracker bags (what ``depthtracker train depthtrack`` runs).

Usage::

    path = train_depthtrack(["data/world"], "runs/depthtrack", preset="edge", epochs=20)
    # fine-tune the shipped model on one's own bags
    path = train_depthtrack(["data/run1"], "runs/ft", preset=None, init="models/depthtrack-edge.safetensors")
    # several processes or GPUs: torchrun --nproc_per_node=N -m depthtracker.cli train depthtrack --bag ...

Each step trains both tasks on one batch (one forward, as DDP needs): every camera of a set for depth and one
template/search pair for tracking (``data.depth_datasets``). ``engine.fit`` does the rest: AdamW with warm-up and
cosine decay, bf16 autocast on CUDA, gradient clipping, EMA weights, resumable checkpoints ``OUT/last.*``
(safetensors + JSON sidecar with the model config, git revision and data manifest), ``OUT/best.*`` on the
validation metric when ``val_bag`` is given, TensorBoard scalars (``OUT/tb``; CSV without tensorboard), a
progress bar on rank 0.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthtracker.data.depth_datasets import (
    DepthTrackBatch,
    DepthTrackDataConfig,
    DepthTrackDataset,
    collate_depthtrack,
)
from depthtracker.models.depthtrack import DepthTrack, DepthTrackConfig, DepthTrackCriterion, decode_sot
from depthtracker.train.engine import FitResult, TrainConfig, fit

__all__ = ["build_model_config", "data_config_for", "init_from_checkpoint", "train_depthtrack", "fit_depthtrack",
           "quick_metrics"]


def build_model_config(preset: str = "edge", overrides: Mapping[str, Any] | None = None) -> DepthTrackConfig:
    """Preset + overrides (unknown fields are errors naming them)."""
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(DepthTrackConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown DepthTrack config field(s) {unknown}; allowed: {sorted(fields)}")
    return DepthTrackConfig.from_preset(preset, **overrides)


def init_from_checkpoint(path: str | os.PathLike[str],
                         overrides: Mapping[str, Any] | None = None) -> tuple[DepthTrackConfig, dict[str, torch.Tensor],
                                                                            dict[str, Any]]:
    """``(config, weights, provenance)`` to fine-tune a checkpoint: its own model config (the architecture is
    fixed by the weights) with ``overrides`` on top, e.g. ``attention_backend`` or loss weights."""
    from depthtracker.train.checkpoints import load_checkpoint, model_config

    state, side = load_checkpoint(path)
    base = model_config(side, path, "DepthTrack").to_dict()
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise ValueError(f"unknown DepthTrack config field(s) {unknown}; allowed: {sorted(base)}")
    config = DepthTrackConfig.from_dict({**base, **overrides})
    return config, state, {"checkpoint": str(path), "weights_sha256": side.get("weights_sha256"),
                           "git_revision": side.get("git_revision")}


def data_config_for(model: DepthTrackConfig, augment: bool, seed: int = 0, **overrides: Any) -> DepthTrackDataConfig:
    """The data config whose input and crop sizes match ``model`` (the two must agree)."""
    return DepthTrackDataConfig(**{"input_size": (model.input_height, model.input_width),
                                   "template_size": model.template_size, "search_size": model.search_size,
                                   "template_factor": model.template_factor, "search_factor": model.search_factor,
                                   "augment": augment, "seed": seed, **overrides})


def _check_bags(bags: Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(bags, (str, os.PathLike)):
        bags = [bags]
    paths = [Path(b) for b in bags]
    if not paths:
        raise ValueError("train depthtrack needs at least one --bag")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"training bag(s) {missing} do not exist; make one with 'depthtracker synth --out PATH'")
    return paths


@torch.no_grad()
def quick_metrics(model: torch.nn.Module, data: DepthTrackDataset, batch_size: int = 4,
                  max_samples: int = 64) -> dict[str, float]:
    """Validation scalars at network-input resolution: depth ``abs_rel``, ``delta1`` (all cameras, valid pixels)
    and tracking ``sot_iou`` (IoU of the best candidate with the target box) over the first ``max_samples``."""
    dev = next(model.parameters()).device
    n = min(len(data), max_samples)
    err, ok, count, ious = 0.0, 0.0, 0, []
    for start in range(0, n, batch_size):
        batch = collate_depthtrack([data[i] for i in range(start, min(n, start + batch_size))])
        out = model(batch.images.to(dev), batch.intrinsics.to(dev), batch.extrinsics.to(dev),
                    batch.template.to(dev), batch.search.to(dev))
        pred, gt = out.depth.float().cpu(), batch.depth
        valid = torch.isfinite(gt) & (gt > 0)
        p, g = pred[valid], gt[valid]
        err += float(((p - g).abs() / g).sum())
        ok += float((torch.maximum(p / g, g / p) < 1.25).sum())
        count += int(valid.sum())
        for cands, box, v in zip(decode_sot(out.sot, model.config.search_size, 1), batch.boxes, batch.box_valid):
            if v and len(cands.boxes):
                ious.append(_iou(cands.boxes[0], box.numpy()))
    return {"abs_rel": err / max(count, 1), "delta1": ok / max(count, 1),
            "sot_iou": float(np.mean(ious)) if ious else 0.0}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def fit_depthtrack(train_set: DepthTrackDataset, model_cfg: DepthTrackConfig, train_cfg: TrainConfig,
                   val_set: DepthTrackDataset | None = None, resume: bool = False,
                   device: str | torch.device | None = None, init_weights: Mapping[str, torch.Tensor] | None = None,
                   init_info: Mapping[str, Any] | None = None) -> FitResult:
    """Build the model and criterion and run ``engine.fit`` on ready datasets (tests call this directly).

    ``init_weights``: start from these weights (fine-tuning; ``init_from_checkpoint``) instead of a random
    initialisation; ``init_info`` is recorded in the data manifest as ``init``."""
    torch.manual_seed(train_cfg.seed)
    model = DepthTrack(model_cfg)
    if init_weights is not None:
        try:
            missing, unexpected = model.load_state_dict(dict(init_weights), strict=False)
            problem = f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        except RuntimeError as exc:  # tensor shapes differ
            missing, unexpected = [None], []
            problem = " ".join(line.strip() for line in str(exc).splitlines()[:2])
        if missing or unexpected:
            raise ValueError(f"the initial weights do not fit this DepthTrack config ({problem}); a --set that changes "
                             "the architecture cannot start from them")
    criterion = DepthTrackCriterion(model_cfg)

    def loss_fn(net: torch.nn.Module, batch: DepthTrackBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = net(batch.images, batch.intrinsics, batch.extrinsics, batch.template, batch.search)
        return criterion(out, depth=batch.depth, boxes=batch.boxes, box_valid=batch.box_valid)

    evaluate = None
    if val_set is not None:
        def evaluate(m: torch.nn.Module) -> dict[str, float]:
            return quick_metrics(m, val_set)

    manifest = {"train": train_set.manifest(), "val": val_set.manifest() if val_set is not None else None}
    if init_weights is not None:
        manifest["init"] = dict(init_info or {})
    return fit(model, loss_fn, train_set, train_cfg, collate_fn=collate_depthtrack, evaluate=evaluate,
               model_config=model_cfg.to_dict(), manifest=manifest, resume=resume, device=device)


def train_depthtrack(bags: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str] = "runs/depthtrack",
                     preset: str | None = "edge", overrides: Mapping[str, Any] | None = None, epochs: int = 10,
                     max_steps: int = 0, batch_size: int = 8, lr: float = 1e-3,
                     val_bag: str | os.PathLike[str] | None = None,
                     eval_every: int = 1, resume: bool = False, seed: int = 0, progress: bool = True,
                     num_workers: int = 0, ema_decay: float = 0.999, device: str | torch.device | None = None,
                     init: str | os.PathLike[str] | None = None) -> Path:
    """Train from bags into ``out_dir``; returns the path of ``last.safetensors`` (the EMA weights).

    ``overrides`` are DepthTrackConfig fields on top of ``preset``. ``val_bag`` (optional) is scored every
    ``eval_every`` epochs with :func:`quick_metrics`; ``best.*`` keeps the best ``delta1``. ``init``: fine-tune
    this checkpoint (e.g. the shipped ``models/depthtrack-edge.safetensors`` on one's own bags): its weights and
    model config (``overrides`` on top; ``preset`` must then be None), a fresh optimizer and schedule, and no
    temporal-gap curriculum (the checkpoint went through it: gaps up to ``max_gap`` from the first epoch).
    """
    paths = _check_bags(bags)
    weights = info = None
    if init is not None:
        if preset is not None:
            raise ValueError(f"--init {init} and --preset {preset} exclude each other: the checkpoint fixes the "
                             "architecture (change fields with --set)")
        model_cfg, weights, info = init_from_checkpoint(init, overrides)
    else:
        model_cfg = build_model_config(preset or "edge", overrides)
    # A fine-tuned model has been through the temporal-gap curriculum: every gap up to max_gap from the start.
    extra = {"curriculum_epochs": 0} if init is not None else {}
    train_set = DepthTrackDataset(paths, data_config_for(model_cfg, augment=True, seed=seed, **extra),
                                  progress=progress)
    val_set = None
    if val_bag is not None:
        val_set = DepthTrackDataset(_check_bags([val_bag]), data_config_for(model_cfg, augment=False, seed=seed))
    cfg = TrainConfig(epochs=epochs, max_steps=max_steps, batch_size=batch_size, num_workers=num_workers, lr=lr,
                      weight_decay=0.05, warmup_steps=min(200, max(1, (max_steps or 10**9) // 10)),
                      ema_decay=ema_decay, ema_ramp_steps=200.0, eval_every=eval_every,
                      best_metric="delta1" if val_set is not None else "", out_dir=str(out_dir), seed=seed,
                      progress=progress, grad_clip=1.0)
    result = fit_depthtrack(train_set, model_cfg, cfg, val_set, resume=resume, device=device, init_weights=weights,
                            init_info=info)
    return Path(out_dir) / "last.safetensors" if result.last_checkpoint is None else result.last_checkpoint
