"""Backend choice shared by every kernel op: explicit, labelled, and logged on the first naive fallback."""

from __future__ import annotations

import logging
import os

import torch

BACKENDS = ("auto", "triton", "naive")

_log = logging.getLogger("depthtracker.kernels")
_announced: set[str] = set()


def triton_interpreted() -> bool:
    """True when Triton kernels run on the CPU through the interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_backend(backend: str, *tensors: torch.Tensor, op: str = "kernel") -> str:
    """Return ``"triton"`` or ``"naive"``: the path an op called with ``backend`` on ``tensors`` runs.

    ``"auto"`` picks Triton when every tensor is on CUDA and the naive PyTorch path otherwise (the first naive
    fallback of each ``op`` is logged at INFO). ``"triton"`` forces the kernels: on CUDA, or on CPU tensors
    through Triton's interpreter when ``TRITON_INTERPRET=1`` (how the CPU tests run them); it raises otherwise.
    "auto" never picks the interpreter: a test session that sets ``TRITON_INTERPRET`` for the kernel tests must
    not slow every model on the CPU down to interpreter speed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {BACKENDS}")
    on_cuda = all(t.is_cuda for t in tensors)
    usable = on_cuda or (triton_interpreted() and not any(t.is_cuda for t in tensors))
    if backend == "triton":
        if not usable:
            raise RuntimeError(f"{op}: backend='triton' needs CUDA tensors or TRITON_INTERPRET=1 with CPU tensors")
        return "triton"
    if backend == "naive" or not on_cuda:
        if backend == "auto" and op not in _announced:
            _announced.add(op)
            _log.info("%s: no CUDA tensors, running the naive PyTorch path", op)
        return "naive"
    return "triton"
