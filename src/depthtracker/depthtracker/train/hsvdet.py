"""Train HSV-DET on depthtracker bags (what ``depthtracker train hsvdet`` runs).

Usage::

    ckpt = train_hsvdet(["out/data/train-s1", "out/data/train-s2"], "runs/hsvdet-n", preset="n",
                        image_size=(256, 320), max_steps=2000, val_bag="out/data/val-s100")
    # after a crash: the same call with resume=True continues from runs/hsvdet-n/last.state.*

The recipe is YOLOv8's, shortened for a CPU: AdamW over ``HSVDet.param_groups`` (no decay on biases, norms and SGB
gates), linear warm-up then cosine decay (``train.engine``), a weight EMA (``last`` holds the EMA weights), flip and
HSV augmentation (``data.datasets``), letterboxed inputs. Every ``eval_every`` epochs the EMA model is scored on
``val_bag`` with COCO mAP (``eval.hsvdet.evaluate_dataset``, boxes in network-input pixels) and the best
``map50_95`` is kept as ``out_dir/best``. The sidecar carries the model config, the data manifest (bags, their synth
configs and seeds, the letterbox settings), the training config, so that ``HSVDetPredictor.from_checkpoint``
rebuilds everything from the checkpoint alone.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from depthtracker.data.datasets import DetectionDataConfig, DetectionDataset, collate_detections, images_to_float
from depthtracker.models.hsvdet import HSVDet, HSVDetConfig, HSVDetCriterion
from depthtracker.train.checkpoints import checkpoint_paths
from depthtracker.train.engine import FitResult, TrainConfig, fit

__all__ = ["HSVDetTrainOptions", "train_hsvdet", "fit_hsvdet", "build_model_config"]


@dataclass(frozen=True)
class HSVDetTrainOptions:
    """Detector-specific training choices (the loop's own settings are ``TrainConfig``'s)."""

    image_size: tuple[int, int] = (256, 320)  # network input (H, W), px, multiples of 32; 640x480 letterboxes to it
    min_visibility: float = 0.25  # ground truth kept when its visible fraction is >= this, [0, 1]
    augment: bool = True  # flip + HSV jitter on the training set
    eval_batch_size: int = 16  # images per forward pass of the validation callback, >= 1
    eval_score_threshold: float = 0.001  # least score kept for mAP (COCO practice: low threshold, many detections)

    def __post_init__(self) -> None:
        if isinstance(self.eval_batch_size, bool) or not isinstance(self.eval_batch_size, int) or \
                self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be an integer >= 1, got {self.eval_batch_size!r}")
        if not 0.0 <= self.eval_score_threshold <= 1.0:
            raise ValueError(f"eval_score_threshold must be in [0, 1], got {self.eval_score_threshold!r}")


def build_model_config(preset: str, num_classes: int, image_size: tuple[int, int],
                       overrides: Mapping[str, Any] | None = None) -> HSVDetConfig:
    """``HSVDetConfig`` of ``preset`` for ``num_classes`` and input ``image_size`` (H, W), plus ``overrides``.

    Unknown override names raise ``ValueError`` listing the allowed fields."""
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(HSVDetConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown HSV-DET config field(s) {unknown}; allowed: {sorted(fields)}")
    base = {"num_classes": num_classes, "input_height": image_size[0], "input_width": image_size[1]}
    return HSVDetConfig.from_preset(preset, **{**base, **overrides})


def _check_bags(bags: Sequence[str | os.PathLike[str]], what: str) -> list[Path]:
    if isinstance(bags, (str, os.PathLike)) or not bags:
        raise ValueError(f"{what}: give a list of one or more bag folders")
    paths = [Path(b) for b in bags]
    for p in paths:
        if not p.exists():
            raise ValueError(f"{what}: bag {p} does not exist (render one with 'depthtracker synth --out {p}')")
    return paths


def train_hsvdet(bags: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], preset: str = "n",
                 overrides: Mapping[str, Any] | None = None, image_size: tuple[int, int] = (256, 320),
                 epochs: int = 10, max_steps: int = 0, batch_size: int = 16, lr: float = 2e-3,
                 weight_decay: float = 5e-4, warmup_steps: int = 100, ema_decay: float = 0.999,
                 ema_ramp_steps: float = 200.0, val_bag: str | os.PathLike[str] | None = None, eval_every: int = 1,
                 options: HSVDetTrainOptions | None = None, resume: bool = False, seed: int = 0,
                 progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Train HSV-DET on ``bags`` into ``out_dir``; returns the checkpoint to use (``best`` when a validation bag
    chose one, else ``last``). ``max_steps > 0`` overrides ``epochs``. Bad input raises ``ValueError``."""
    options = options or HSVDetTrainOptions(image_size=tuple(image_size))
    if tuple(image_size) != tuple(options.image_size):
        options = dataclasses.replace(options, image_size=tuple(image_size))
    train_cfg = TrainConfig(epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                            weight_decay=weight_decay, warmup_steps=warmup_steps, ema_decay=ema_decay,
                            ema_ramp_steps=ema_ramp_steps, eval_every=eval_every, out_dir=str(out_dir), seed=seed,
                            best_metric="map50_95" if val_bag is not None else "", progress=progress)
    build_model_config(preset, 1, tuple(options.image_size), overrides)  # fail fast on a bad preset or override
    paths = _check_bags(bags, "train hsvdet")
    val_paths = _check_bags([val_bag], "train hsvdet --val-bag") if val_bag is not None else []
    data_cfg = DetectionDataConfig(image_size=tuple(options.image_size), min_visibility=options.min_visibility,
                                   augment=options.augment, seed=seed)
    log(f"train hsvdet: reading {len(paths)} bag(s)")
    train_set = DetectionDataset(bags=[str(p) for p in paths], config=data_cfg, progress=progress)
    val_set = None
    if val_paths:
        val_set = DetectionDataset(bags=[str(p) for p in val_paths],
                                   config=dataclasses.replace(data_cfg, augment=False), progress=progress)
    model_cfg = build_model_config(preset, train_set.num_classes, tuple(options.image_size), overrides)
    log(f"train hsvdet: {len(train_set)} images, {train_set.num_classes} classes {train_set.class_names}; "
        f"preset {preset}, input {options.image_size[1]}x{options.image_size[0]}, "
        f"{'max_steps ' + str(max_steps) if max_steps else str(epochs) + ' epochs'} of batch {batch_size}")
    result = fit_hsvdet(train_set, val_set, model_cfg, train_cfg, options, resume=resume)
    best = checkpoint_paths(Path(out_dir) / "best")[0]
    chosen = best if val_paths and best.is_file() else result.last_checkpoint
    if chosen is None:
        raise RuntimeError(f"train hsvdet: no checkpoint was written to {out_dir}")
    log(f"train hsvdet: {result.step} steps; metrics {dict(result.metrics)}; checkpoint {chosen}")
    return Path(chosen)


def fit_hsvdet(train_set: DetectionDataset, val_set: DetectionDataset | None, model_cfg: HSVDetConfig,
               train_cfg: TrainConfig, options: HSVDetTrainOptions | None = None,
               resume: bool = False) -> FitResult:
    """Train a fresh ``HSVDet(model_cfg)`` on loaded datasets (what ``train_hsvdet`` and the ablation bench share).

    The weights are seeded with ``train_cfg.seed``; AdamW over ``HSVDet.param_groups(train_cfg.weight_decay)``;
    the validation callback scores ``val_set`` when given."""
    options = options or HSVDetTrainOptions(image_size=(model_cfg.input_height, model_cfg.input_width))
    if val_set is not None and val_set.class_names != train_set.class_names:
        raise ValueError(f"validation bag classes {val_set.class_names} differ from training classes "
                         f"{train_set.class_names}")
    torch.manual_seed(train_cfg.seed)
    model = HSVDet(model_cfg)
    criterion = HSVDetCriterion(model_cfg)

    def loss_fn(net: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = criterion(net(images_to_float(batch.images)), batch.targets)
        return terms["loss"], {k: v.detach() for k, v in terms.items() if k != "loss"}

    evaluate = None
    if val_set is not None:
        from depthtracker.eval.hsvdet import evaluate_dataset

        def evaluate(m: torch.nn.Module) -> dict[str, Any]:
            return evaluate_dataset(m, val_set, options.eval_batch_size, options.eval_score_threshold)

    optimizer = torch.optim.AdamW(model.param_groups(train_cfg.weight_decay), lr=train_cfg.lr,
                                  betas=(train_cfg.momentum, 0.999))
    manifest = {**train_set.manifest(), "validation": val_set.manifest() if val_set is not None else None}
    return fit(model, loss_fn, train_set, train_cfg, optimizer=optimizer,
               collate_fn=functools.partial(collate_detections, as_uint8=True),  # 4x fewer bytes to the device
               evaluate=evaluate, model_config=model_cfg.to_dict(), manifest=manifest, resume=resume,
               device="cpu" if not torch.cuda.is_available() else None)
