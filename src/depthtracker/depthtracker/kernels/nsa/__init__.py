"""Non-causal vision Native Sparse Attention (DESIGN.md §3-§4): selected, compressed and local branches.

Fast ops (``backend="auto" | "triton" | "naive"``) and their naive twins with the same signatures.
"""

from depthtracker.kernels.nsa.compose import compress_blocks
from depthtracker.kernels.nsa.index import inverse_block_index, normalize_block_idx, select_blocks
from depthtracker.kernels.nsa.interface import compressed_attention, selected_attention, vision_nsa
from depthtracker.kernels.nsa.layout import TileLayout, from_tile_order, local_block_idx, to_tile_order
from depthtracker.kernels.nsa.naive import (
    naive_compressed_attention,
    naive_select_blocks,
    naive_selected_attention,
    naive_vision_nsa,
)

__all__ = [
    "TileLayout", "compress_blocks", "compressed_attention", "from_tile_order", "inverse_block_index",
    "local_block_idx", "naive_compressed_attention", "naive_select_blocks", "naive_selected_attention",
    "naive_vision_nsa", "normalize_block_idx", "select_blocks", "selected_attention", "to_tile_order", "vision_nsa",
]
