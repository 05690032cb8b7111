"""Data-parallel training under ``torchrun``: process-group set-up, DDP wrapping, rank-aware helpers.

Usage (``torchrun --nproc_per_node=2 train.py``, or ``python -m torch.distributed.run ...``)::

    info = init_distributed()              # reads RANK, WORLD_SIZE, LOCAL_RANK; a no-op without them
    model = wrap_ddp(model.to(info.device), info)
    if info.is_main: ...                   # only rank 0 logs and writes files
    cleanup_distributed()

``engine.fit`` does all of this itself. Backend: NCCL when CUDA is available (one GPU per process, picked by
``LOCAL_RANK``), Gloo on CPU. Every rank must see the same number of batches per epoch (``DistributedSampler``
pads the data to make it so), or the gradient all-reduce of the extra batch would wait forever.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "dist_info", "wrap_ddp", "unwrap", "barrier",
           "all_reduce_mean"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size`` (``local_rank`` on its host), its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} must be an integer (set by torchrun)") from None


def _default_device(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def dist_info() -> DistInfo:
    """The current job: from the initialised process group, else a single CPU/GPU process."""
    local_rank = _env_int("LOCAL_RANK", 0)
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend(),
                        _default_device(local_rank))
    return DistInfo(0, 1, 0, None, _default_device(0))


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the torchrun job described by ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (+ ``MASTER_ADDR``/``PORT``).

    Without those variables, or with ``WORLD_SIZE=1``, nothing is initialised and a single-process ``DistInfo``
    is returned. ``backend`` defaults to ``nccl`` with CUDA and ``gloo`` without. Calling it again is harmless.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return dist_info()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return dist_info()


def cleanup_distributed() -> None:
    """Leave the process group (if one is initialised)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(model: torch.nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` in a distributed job (rank 0's weights are broadcast to all); else
    ``model`` unchanged. Move the model to ``info.device`` first."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP (or any ``.module``-holding) wrapper."""
    return getattr(model, "module", model)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_mean(values: Mapping[str, float], info: DistInfo) -> dict[str, float]:
    """Mean of each scalar over all ranks (every rank must call it with the same keys in the same order)."""
    if not info.distributed or not values:
        return {k: float(v) for k, v in values.items()}
    device = info.device if info.backend == "nccl" else torch.device("cpu")
    t = torch.tensor([float(v) for v in values.values()], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= info.world_size
    return dict(zip(values.keys(), t.tolist()))
