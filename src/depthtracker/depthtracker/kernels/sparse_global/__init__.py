"""Sparse global block (HSV-DET, DESIGN.md §4): top-k token attention with a gated residual."""

from depthtracker.kernels.sparse_global.interface import (
    SparseGlobalBlockGated,
    SparseGlobalConfig,
    sparse_global_attention,
)
from depthtracker.kernels.sparse_global.naive import naive_sparse_global_attention

__all__ = ["SparseGlobalBlockGated", "SparseGlobalConfig", "naive_sparse_global_attention", "sparse_global_attention"]
