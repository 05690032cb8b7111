"""Custom GPU kernels, one folder per op (STYLE rule 13).

Each op folder holds ``naive.py`` (plain PyTorch, fp32 upcast: the reference and the CPU path), ``triton.py``
(kernels and launchers that check shapes, strides and dtypes) and ``interface.py`` (``autograd.Function`` and
the public function). Public functions take ``backend="auto" | "triton" | "naive"``; :func:`resolve_backend`
says which path ``"auto"`` picks for given tensors (Triton on CUDA tensors or when ``TRITON_INTERPRET=1`` is
set, naive otherwise) and the first naive fallback of each op is logged, so the choice is never silent.

Ops:
- :mod:`depthtracker.kernels.nsa`: vision Native Sparse Attention (selected, compressed, local branches).
- :mod:`depthtracker.kernels.sparse_global`: the gated sparse global block of HSV-DET.
"""

from depthtracker.kernels._dispatch import BACKENDS, resolve_backend

__all__ = ["BACKENDS", "resolve_backend"]
