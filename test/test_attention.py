"""Selectable attention (mha | mqa | gqa | nsa): shapes, head sharing, agreement with a dense reference."""

from __future__ import annotations

import pytest
import torch
from depthtracker.kernels.nsa import to_tile_order
from depthtracker.models.attention import Attention, AttentionConfig, reference_attention


def _qkv(attn: Attention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v recomputed from the module's weights, independently of its forward."""
    cfg = attn.config
    b, n, _ = x.shape
    d = attn.head_dim
    q = attn.q_norm(attn.q(x).view(b, n, cfg.heads, d)).transpose(1, 2)
    kv = attn.kv(x).view(b, n, 2, cfg.n_kv_heads, d)
    return q, attn.k_norm(kv[:, :, 0]).transpose(1, 2), kv[:, :, 1].transpose(1, 2)


@pytest.mark.parametrize("kind,kv_heads,expect_kv", [("mha", 1, 4), ("mqa", 2, 1), ("gqa", 2, 2)],
                         ids=["mha", "mqa", "gqa"])
def test_dense_kinds_match_reference_and_share_heads(kind, kv_heads, expect_kv):
    torch.manual_seed(0)
    attn = Attention(AttentionConfig(dim=32, heads=4, kind=kind, kv_heads=kv_heads))
    assert attn.config.n_kv_heads == expect_kv
    assert attn.kv.out_features == 2 * expect_kv * 8  # fewer KV heads = smaller KV projection
    x = torch.randn(2, 37, 32)  # ragged token count
    out = attn(x)
    assert out.shape == (2, 37, 32)
    q, k, v = _qkv(attn, x)
    assert k.shape == (2, expect_kv, 37, 8)
    ref = attn.proj(reference_attention(q, k, v).transpose(1, 2).reshape(2, 37, 32))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    if expect_kv < 4:  # query heads of one group see the same keys: repeating K/V reproduces the output
        g = 4 // expect_kv
        rep = reference_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1))
        torch.testing.assert_close(reference_attention(q, k, v), rep)


def _nsa_and_mha(kv_heads: int) -> tuple[Attention, Attention]:
    torch.manual_seed(1)
    nsa = Attention(AttentionConfig(dim=32, heads=4, kind="nsa", kv_heads=kv_heads, nsa_tile=2, nsa_n_select=64,
                                    nsa_dense_below=0, backend="naive"))
    dense = Attention(AttentionConfig(dim=32, heads=4, kind="gqa", kv_heads=kv_heads))
    dense.load_state_dict({k: v for k, v in nsa.state_dict().items() if not k.startswith("gate")})
    with torch.no_grad():  # gates: compressed 0, selected 1, local 0 for every head
        nsa.gate.weight.zero_()
        nsa.gate.bias.copy_(torch.tensor([-40.0, 40.0, -40.0]).repeat(4))
    return nsa, dense


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["nsa-mha", "nsa-gqa"])
def test_nsa_with_every_block_selected_equals_dense(kv_heads):
    nsa, dense = _nsa_and_mha(kv_heads)
    grid = torch.randn(2, 2, 3, 5, 32)  # (B, cams, hp, wp, C): ragged grid, padded to 2x2 tiles
    tokens, layout = to_tile_order(grid, 2)
    assert layout.n_blocks < 64  # n_select covers every block
    out = nsa(tokens, layout)
    torch.testing.assert_close(out, dense(tokens), atol=2e-5, rtol=1e-4)
    out.sum().backward()
    assert nsa.q.weight.grad is not None and torch.isfinite(nsa.q.weight.grad).all()


def test_nsa_gates_mix_branches_and_fall_back_to_dense_without_layout():
    nsa, dense = _nsa_and_mha(4)
    tokens, layout = to_tile_order(torch.randn(1, 1, 4, 4, 32), 2)
    with torch.no_grad():
        nsa.gate.bias.zero_()  # 0.5 * (compressed + selected + local) differs from dense attention
    assert not torch.allclose(nsa(tokens, layout), dense(tokens), atol=1e-4)
    torch.testing.assert_close(nsa(tokens, None), dense(tokens), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"kind": "flash"}, "kind"), ({"dim": 30, "heads": 4}, "divisible"),
    ({"kind": "gqa", "heads": 4, "kv_heads": 3}, "divide"), ({"backend": "cuda"}, "backend"),
], ids=["kind", "dim", "kv_heads", "backend"])
def test_config_errors_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttentionConfig(**{"dim": 32, "heads": 4, **kwargs})


def test_nsa_gate_stays_in_the_graph_on_the_dense_fallback():
    nsa, _ = _nsa_and_mha(4)
    nsa.train()
    nsa(torch.randn(1, 6, 32)).sum().backward()  # no layout: dense attention
    assert nsa.gate.weight.grad is not None  # DDP without find_unused_parameters needs a gradient here


def test_nsa_gets_one_dtype_when_the_qk_norm_runs_in_fp32(monkeypatch):
    # CUDA autocast runs LayerNorm (the q/k norm) in fp32 while the projections give bf16; the sparse kernels take a
    # single dtype, so the module must hand them q, k, v alike (the naive path would hide a mix Triton rejects).
    import depthtracker.models.attention as attention

    seen = []

    def spy(q, k, v, gates, layout, **kw):
        seen.append((q.dtype, k.dtype, v.dtype))
        return torch.zeros_like(q)

    class Fp32Norm(torch.nn.Module):  # what autocast does to LayerNorm on CUDA
        def __init__(self, norm):
            super().__init__()
            self.norm = norm

        def forward(self, t):
            return self.norm(t).float()

    monkeypatch.setattr(attention, "vision_nsa", spy)
    nsa, _ = _nsa_and_mha(4)
    nsa = nsa.to(torch.bfloat16)
    nsa.q_norm, nsa.k_norm = Fp32Norm(nsa.q_norm), Fp32Norm(nsa.k_norm)
    tokens, layout = to_tile_order(torch.randn(1, 1, 4, 4, 32, dtype=torch.bfloat16), 2)
    nsa(tokens, layout)
    assert seen == [(torch.bfloat16,) * 3]
