"""Training: a generic loop (``engine.fit``), safetensors checkpoints (``checkpoints``), torchrun/DDP helpers
(``distributed``). Models bring their own loss and evaluation; see each module's docstring for usage.

The names below load their module (and PyTorch) on first use, so that importing a submodule such as the CLI
registration in ``depthtrack_cli`` stays cheap: ``depthtracker --help`` should not wait for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": "checkpoints", "load_checkpoint": "checkpoints", "load_train_state": "checkpoints",
    "save_checkpoint": "checkpoints", "save_train_state": "checkpoints",
    "DistInfo": "distributed", "cleanup_distributed": "distributed", "init_distributed": "distributed",
    "FitResult": "engine", "ModelEMA": "engine", "TrainConfig": "engine", "build_optimizer": "engine",
    "build_scheduler": "engine", "fit": "engine",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'depthtracker.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"depthtracker.train.{module}"), name)
    globals()[name] = value
    return value
