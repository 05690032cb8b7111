"""Training: a generic loop (``engine.fit``), safetensors checkpoints (``checkpoints``), torchrun/DDP helpers
(``distributed``). Models bring their own loss and evaluation; see each module's docstring for usage."""

from depthtracker.train.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_train_state,
    save_checkpoint,
    save_train_state,
)
from depthtracker.train.distributed import DistInfo, cleanup_distributed, init_distributed
from depthtracker.train.engine import FitResult, ModelEMA, TrainConfig, build_optimizer, build_scheduler, fit

__all__ = ["CheckpointError", "DistInfo", "FitResult", "ModelEMA", "TrainConfig", "build_optimizer",
           "build_scheduler", "cleanup_distributed", "fit", "init_distributed", "load_checkpoint",
           "load_train_state", "save_checkpoint", "save_train_state"]
