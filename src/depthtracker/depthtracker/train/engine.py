"""A small generic training loop: AMP, EMA, gradient clipping, logging, checkpoints, resume, evaluation, DDP.

Usage::

    def loss_fn(model, batch):                 # model may be DDP-wrapped: call it, not model.module
        out = model(batch.images)
        loss, parts = criterion(out, batch.targets)
        return loss, parts                     # parts: {"box": ..., "cls": ...} tensors or floats, for logging

    result = fit(model, loss_fn, dataset, TrainConfig(epochs=50, lr=1e-3, ema_decay=0.9999, out_dir="runs/det"),
                 collate_fn=collate_detections, evaluate=lambda m: det_eval(m, val_set),
                 model_config=asdict(model_cfg), manifest=dataset.manifest())
    # resume after a crash: the same call with resume=True

What ``fit`` does, in order: joins a torchrun job when ``WORLD_SIZE`` > 1 (``distributed.init_distributed``);
seeds Python, NumPy and torch with ``config.seed``; builds AdamW/SGD and a warm-up + cosine/linear/constant
schedule unless given; optionally restores ``out_dir/last.state.*``; wraps the model in DDP; then per epoch
iterates a ``DistributedSampler`` (seeded shuffle, also with one process, so that an epoch's order depends only on
``seed`` and the epoch) and calls ``dataset.set_epoch`` when the dataset has one. Each step runs ``loss_fn`` under
bf16 autocast on CUDA (``amp``; never on CPU), back-propagates, clips the gradient norm, steps optimizer and
scheduler (per step) and updates the EMA. Every ``eval_every`` epochs rank 0 runs ``evaluate`` on the EMA model
(or the model) in eval mode without gradients; every ``checkpoint_every`` epochs and at the end rank 0 writes
``out_dir/last`` (weights: EMA when enabled, sidecar with config, manifest, metrics) and its training state
``out_dir/last.state`` (raw weights, optimizer, scheduler, EMA, RNG), and ``out_dir/best`` when ``best_metric``
improved. Checkpoints fall on epoch boundaries, so a resumed run replays exactly what the uninterrupted run would
have done (bit-exact on CPU). Scalars go to TensorBoard (``out_dir/tb``) when ``tensorboard`` is installed, else to
``out_dir/scalars.csv`` (columns ``step,tag,value``).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from depthtracker.train.checkpoints import load_train_state, save_checkpoint, save_train_state
from depthtracker.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    init_distributed,
    unwrap,
    wrap_ddp,
)

__all__ = ["TrainConfig", "FitResult", "ModelEMA", "fit", "build_optimizer", "build_scheduler", "move_to"]

LossFn = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, Mapping[str, Any]]]


@dataclass(frozen=True)
class TrainConfig:
    """Training-loop settings (model and data settings live in their own configs)."""

    epochs: int = 10  # passes over the training data, >= 1 (ignored when max_steps > 0)
    max_steps: int = 0  # optimizer steps to run, >= 0; > 0 overrides epochs (the last epoch may be partial)
    batch_size: int = 16  # samples per step and process, >= 1 (when fit builds the loader)
    num_workers: int = 0  # DataLoader worker processes, >= 0
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3  # peak learning rate, > 0
    momentum: float = 0.9  # SGD momentum / AdamW beta1, [0, 1)
    weight_decay: float = 5e-4  # decoupled weight decay on weights of rank >= 2 (not on biases and norms), >= 0
    warmup_steps: int = 0  # linear warm-up from warmup_factor * lr to lr over this many steps, >= 0
    warmup_factor: float = 0.1  # learning-rate multiplier at step 0 of the warm-up, [0, 1]
    schedule: str = "cosine"  # after warm-up: cosine | linear | constant decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.01  # final learning rate / peak, [0, 1]
    grad_clip: float = 10.0  # largest gradient L2 norm, > 0; 0 = no clipping
    amp: bool = True  # bf16 autocast on CUDA (no effect on CPU)
    ema_decay: float = 0.0  # weight EMA decay in [0, 1); 0 = off; YOLO uses 0.9999
    ema_ramp_steps: float = 2000.0  # EMA decay ramps up as 1 - exp(-updates / this), > 0
    log_every: int = 10  # steps between logged scalars, >= 1
    eval_every: int = 1  # epochs between evaluate() calls, >= 1 (and always after the last epoch)
    checkpoint_every: int = 1  # epochs between checkpoints, >= 0 (0 = only at the end)
    best_metric: str = ""  # evaluate() key whose maximum is kept as out_dir/best ("" = none)
    out_dir: str = "runs/train"  # checkpoints and logs
    seed: int = 0  # seeds Python, NumPy, torch and the shuffling, >= 0
    progress: bool = True  # tqdm progress bar on rank 0

    def __post_init__(self) -> None:
        ints = {"epochs": 1, "max_steps": 0, "batch_size": 1, "num_workers": 0, "warmup_steps": 0, "log_every": 1,
                "eval_every": 1, "checkpoint_every": 0, "seed": 0}
        for name, lo in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"TrainConfig.{name} must be an integer >= {lo}, got {v!r}")
        floats = {"lr": (0, math.inf, True), "momentum": (0, 1, False), "weight_decay": (0, math.inf, False),
                  "warmup_factor": (0, 1, False), "min_lr_ratio": (0, 1, False), "grad_clip": (0, math.inf, False),
                  "ema_decay": (0, 1, False), "ema_ramp_steps": (0, math.inf, True)}
        for name, (lo, hi, lo_open) in floats.items():
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (v > lo if lo_open else v >= lo)
            if not ok or not v <= hi or (name in ("momentum", "ema_decay") and v >= 1):
                raise ValueError(f"TrainConfig.{name} must be a number in {'(' if lo_open else '['}{lo}, {hi}"
                                 f"{')' if name in ('momentum', 'ema_decay') else ']'}, got {v!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"TrainConfig.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ValueError(f"TrainConfig.schedule must be cosine, linear or constant, got {self.schedule!r}")


@dataclass
class FitResult:
    """What ``fit`` did: final ``step`` and ``epoch`` (completed epochs), the last ``metrics`` of ``evaluate``,
    ``history`` (rank 0's logged scalars), checkpoint paths (None on other ranks or when not written), the trained
    ``model`` (unwrapped) and the ``ema`` model (or None)."""

    step: int
    epoch: int
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    model: torch.nn.Module
    ema: torch.nn.Module | None


class ModelEMA:
    """Exponential moving average of the weights: ``v <- d v + (1 - d) w`` after every optimizer step, with
    ``d = decay * (1 - exp(-updates / ramp_steps))`` (YOLOv5's ramp: early on the average follows the fast-moving
    weights). Integer buffers (counters) are copied."""

    def __init__(self, model: torch.nn.Module, decay: float, ramp_steps: float) -> None:
        self.module = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)
        self.decay, self.ramp_steps, self.updates = decay, ramp_steps, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1.0 - math.exp(-self.updates / self.ramp_steps))
        src = unwrap(model).state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1.0 - d)
            else:
                v.copy_(src[k])

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["weights"])


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov); weight decay only on parameters of rank >= 2 (conv and linear weights)."""
    decay, no_decay = [], []
    for p in unwrap(model).parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step LambdaLR: linear warm-up, then cosine / linear / constant decay to ``min_lr_ratio``."""
    warm, floor = config.warmup_steps, config.min_lr_ratio

    def factor(step: int) -> float:
        if step < warm:
            return config.warmup_factor + (1.0 - config.warmup_factor) * step / warm
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        if config.schedule == "cosine":
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
        if config.schedule == "linear":
            return 1.0 - (1.0 - floor) * t
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def move_to(batch: Any, device: torch.device) -> Any:
    """Tensors anywhere inside tuples (named ones too), lists and dicts moved to ``device``; the rest unchanged."""
    non_blocking = device.type == "cuda"
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device) for k, v in batch.items()}
    return batch


class _Scalars:
    """TensorBoard writer when tensorboard is installed, else a CSV ``step,tag,value`` log; silent off rank 0."""

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.kind, self._tb, self._csv, self._file = "none", None, None, None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb, self.kind = SummaryWriter(str(out_dir / "tb")), "tensorboard"
        except ImportError:  # tensorboard is optional; the CSV holds the same scalars
            self._file = open(out_dir / "scalars.csv", "a", newline="")  # noqa: SIM115 - closed in close()
            self._csv, self.kind = csv.writer(self._file), "csv"
            if self._file.tell() == 0:
                self._csv.writerow(["step", "tag", "value"])

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        for tag, value in scalars.items():
            if self._tb is not None:
                self._tb.add_scalar(tag, value, step)
            elif self._csv is not None:
                self._csv.writerow([step, tag, repr(float(value))])
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._file is not None:
            self._file.close()


def _flat_numbers(d: Mapping[str, Any], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat_numbers(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float, np.number)) and not isinstance(v, bool) or (
                isinstance(v, torch.Tensor) and v.numel() == 1):
            out[f"{prefix}{k}"] = float(v)
    return out


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code draws from the global NumPy RNG
    torch.manual_seed(seed)


def fit(model: torch.nn.Module, loss_fn: LossFn, train_data: Dataset | DataLoader, config: TrainConfig, *,
        optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        evaluate: Callable[[torch.nn.Module], Mapping[str, Any]] | None = None,
        model_config: Mapping[str, Any] | Any = None, manifest: Mapping[str, Any] | None = None,
        resume: bool | str = False, device: str | torch.device | None = None) -> FitResult:
    """Train ``model`` with ``loss_fn(model, batch) -> (loss, scalars)`` (see the module docstring).

    ``train_data`` is a Dataset (fit builds the loader with ``batch_size``, ``num_workers``, ``collate_fn`` and a
    seeded ``DistributedSampler``) or a ready DataLoader (used as it is; its sampler's ``set_epoch`` is called if it
    has one). ``resume``: True = ``out_dir/last``, a string = that checkpoint name; a missing state is an error.
    """
    own_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info: DistInfo = init_distributed()
    out = Path(config.out_dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device) if device is not None else info.device
    _seed_all(config.seed)
    model = model.to(dev)
    base = unwrap(model)

    if isinstance(train_data, DataLoader):
        loader = train_data
    else:
        sampler = DistributedSampler(train_data, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=config.seed)
        loader = DataLoader(train_data, batch_size=config.batch_size, sampler=sampler, collate_fn=collate_fn,
                            num_workers=config.num_workers, pin_memory=dev.type == "cuda")
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError("fit: the training loader yields no batches")
    total = config.max_steps or config.epochs * steps_per_epoch
    epochs = math.ceil(total / steps_per_epoch)
    optimizer = optimizer if optimizer is not None else build_optimizer(base, config)
    scheduler = scheduler if scheduler is not None else build_scheduler(optimizer, config, total)
    ema = ModelEMA(base, config.ema_decay, config.ema_ramp_steps) if config.ema_decay > 0 else None

    step, start_epoch, best, metrics = 0, 0, -math.inf, {}
    if resume:
        name = out / "last" if resume is True else Path(resume)
        state = load_train_state(name, optimizer=optimizer, scheduler=scheduler)
        base.load_state_dict(state["model"])
        if ema is not None and state["ema"] is not None:
            ema.load_state_dict(state["ema"])
        step, start_epoch = state["step"], state["epoch"]
        best = float(state["extra"].get("best", -math.inf))
        metrics = dict(state["extra"].get("metrics", {}))
    net = wrap_ddp(model, info)
    use_amp = config.amp and dev.type == "cuda"
    logger = _Scalars(out, info.is_main)
    history: list[dict[str, float]] = []
    last_path = best_path = None
    bar = None
    if info.is_main and config.progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc="train", unit="step", dynamic_ncols=True)
    window: dict[str, Any] = {}
    window_n, t0, seen = 0, time.perf_counter(), 0
    try:
        for epoch in range(start_epoch, epochs):
            if step >= total:
                break
            for holder in (getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
                if hasattr(holder, "set_epoch"):
                    holder.set_epoch(epoch)
            net.train()
            for batch in loader:
                batch = move_to(batch, dev)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                    loss, parts = loss_fn(net, batch)
                if not torch.isfinite(loss.detach()).all():
                    raise FloatingPointError(f"loss is {loss.item()} at step {step} (epoch {epoch}); lower the "
                                             "learning rate or check the data")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = (torch.nn.utils.clip_grad_norm_(base.parameters(), config.grad_clip)
                        if config.grad_clip > 0 else None)
                optimizer.step()
                scheduler.step()
                if ema is not None:
                    ema.update(base)
                step += 1
                seen += _batch_len(batch)
                scal = {"loss": loss.detach(), **parts}
                if norm is not None:
                    scal["grad_norm"] = norm
                for k, v in scal.items():  # summed as tensors: no host sync until the next log step
                    window[k] = window.get(k, 0.0) + (v.detach().float() if isinstance(v, torch.Tensor) else float(v))
                window_n += 1
                if bar is not None:
                    bar.update()
                if step % config.log_every == 0 or step == total:
                    rate = seen * info.world_size / max(time.perf_counter() - t0, 1e-9)
                    logged = all_reduce_mean({f"train/{k}": float(v) / window_n for k, v in window.items()}, info)
                    if bar is not None:
                        bar.set_postfix(loss=f"{logged['train/loss']:.4g}", epoch=epoch)
                    logged.update({"train/lr": optimizer.param_groups[0]["lr"], "train/samples_per_s": rate,
                                   "train/epoch": epoch})
                    if info.is_main:
                        logger.write(step, logged)
                        history.append({"step": step, **logged})
                    window, window_n, t0, seen = {}, 0, time.perf_counter(), 0
                if step >= total:
                    break
            done = step >= total
            completed = epoch + 1
            if evaluate is not None and (completed % config.eval_every == 0 or done):
                if info.is_main:
                    metrics = _run_evaluate(evaluate, ema.module if ema is not None else base)
                    logger.write(step, _flat_numbers(metrics, "eval/"))
                    history.append({"step": step, **_flat_numbers(metrics, "eval/")})
                barrier(info)
            if done or (config.checkpoint_every and completed % config.checkpoint_every == 0):
                if info.is_main:
                    improved = False
                    if config.best_metric and config.best_metric in metrics:
                        value = float(metrics[config.best_metric])
                        improved, best = value > best, max(best, value)
                    extra = {"epoch": completed, "step": step, "train_config": dataclasses.asdict(config),
                             "weights": "ema" if ema is not None else "model"}
                    weights = ema.module if ema is not None else base
                    last_path = save_checkpoint(out / "last", weights, model_config or {}, manifest, metrics, extra)
                    save_train_state(out / "last", optimizer=optimizer, scheduler=scheduler, epoch=completed,
                                     step=step, ema=ema.state_dict() if ema is not None else None, model=base,
                                     extra={"best": best, "metrics": metrics})
                    if improved:
                        best_path = save_checkpoint(out / "best", weights, model_config or {}, manifest, metrics,
                                                    extra)
                barrier(info)
    finally:
        if bar is not None:
            bar.close()
        logger.close()
        if own_group and info.distributed:
            cleanup_distributed()
    return FitResult(step, min(epochs, math.ceil(step / steps_per_epoch)), metrics, history, last_path, best_path,
                     base, ema.module if ema is not None else None)


def _batch_len(batch: Any) -> int:
    """Samples in a batch: the leading size of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_len(batch[0])
    if isinstance(batch, Mapping) and batch:
        return _batch_len(next(iter(batch.values())))
    return 0


def _run_evaluate(evaluate: Callable[[torch.nn.Module], Mapping[str, Any]], model: torch.nn.Module) -> dict:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            result = evaluate(model)
    finally:
        model.train(was_training)
    if not isinstance(result, Mapping):
        raise TypeError(f"evaluate() must return a mapping of metrics, got {type(result).__name__}")
    return dict(result)
