"""Kernel-test setup: Triton's CPU interpreter where there is no CUDA, NaN-poisoned fresh allocations.

``TRITON_INTERPRET=1`` must be set before any ``@triton.jit`` function is defined; the kernel modules import
Triton lazily, on the first Triton call, so setting it here, at collection, is early enough.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
requires_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _poison(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point() or t.is_complex():
        t.fill_(float("nan"))
    elif t.dtype != torch.bool:
        t.fill_(torch.iinfo(t.dtype).max)  # never a valid index or count
    return t


@pytest.fixture(autouse=True)
def nan_poison(monkeypatch):
    """Every ``torch.empty*`` allocation made during a kernel test starts as NaN (integers: their maximum), so a
    kernel that leaves part of an output unwritten, or reads scratch it never wrote, fails the comparison."""
    real_empty, real_like, real_strided = torch.empty, torch.empty_like, torch.empty_strided
    monkeypatch.setattr(torch, "empty", lambda *a, **kw: _poison(real_empty(*a, **kw)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **kw: _poison(real_like(*a, **kw)))
    monkeypatch.setattr(torch, "empty_strided", lambda *a, **kw: _poison(real_strided(*a, **kw)))
    yield


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
