"""Sparse global block against its naive twin (STYLE rule 14): output and every gradient, 2x rule, properties."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from depthtracker.kernels._testing import assert_close, output_and_grads
from depthtracker.kernels.sparse_global import (
    SparseGlobalBlockGated,
    SparseGlobalConfig,
    naive_sparse_global_attention,
    sparse_global_attention,
)
from depthtracker.kernels.sparse_global.naive import sparse_global_math

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
NAMES = ("x", "w_qkv", "b_qkv", "w_out", "b_out", "ln_q_weight", "ln_q_bias", "ln_k_weight", "ln_k_bias", "alpha")


def _inputs(b, n, c, heads, dtype, alpha=0.7):
    hd = c // heads
    x = torch.randn(b, n, c, device=DEVICE)
    x[:, ::3] *= 0.5  # spread the energies so the top-k boundary is not a near tie
    return [t.to(dtype) for t in (
        x, torch.randn(3 * c, c, device=DEVICE) * c ** -0.5, torch.randn(3 * c, device=DEVICE) * 0.1,
        torch.randn(c, c, device=DEVICE) * c ** -0.5, torch.randn(c, device=DEVICE) * 0.1,
        1 + 0.1 * torch.randn(hd, device=DEVICE), 0.1 * torch.randn(hd, device=DEVICE),
        1 + 0.1 * torch.randn(hd, device=DEVICE), 0.1 * torch.randn(hd, device=DEVICE),
        torch.full((c,), alpha, device=DEVICE) + 0.1 * torch.randn(c, device=DEVICE))]


def _check(b, n, c, heads, topk, dtype):
    inputs = _inputs(b, n, c, heads, dtype)
    do = torch.randn(b, n, c, device=DEVICE).to(dtype)
    out, grads = output_and_grads(lambda *t: sparse_global_attention(*t, topk, heads, backend="triton"), inputs, do)
    ref, ref_grads = output_and_grads(lambda *t: sparse_global_math(*t, topk, heads, 1e-5, torch.float64), inputs, do,
                                      torch.float64)
    base, base_grads = output_and_grads(lambda *t: sparse_global_math(*t, topk, heads, 1e-5, dtype), inputs, do)
    assert_close(out, ref, base, "out")
    for name, g, rg, bg in zip(NAMES, grads, ref_grads, base_grads):
        assert_close(g, rg, bg, "d" + name)


CASES = {"N150-C48-h2-k40": (2, 150, 48, 2, 40), "N63-C40-h4-k63": (1, 63, 40, 4, 100)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_sparse_global_matches_naive(case, dtype):
    _check(*case, dtype)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_sparse_global_matches_naive_gpu(dtype):
    _check(2, 34 * 60, 256, 4, 300, dtype)


def test_signature_matches_naive_twin():
    fast = [p for p in inspect.signature(sparse_global_attention).parameters.values() if p.name != "backend"]
    assert fast == list(inspect.signature(naive_sparse_global_attention).parameters.values())


@pytest.mark.parametrize("backend", ["triton", "naive"])
def test_zero_gate_is_an_exact_identity(backend):
    inputs = _inputs(2, 70, 32, 2, torch.float32, alpha=0.0)
    inputs[-1] = torch.zeros_like(inputs[-1])
    out = sparse_global_attention(*inputs, 20, 2, backend=backend)
    assert torch.equal(out, inputs[0])


@pytest.mark.parametrize("backend", ["triton", "naive"])
def test_k_equal_n_is_a_dense_block(backend):
    b, n, c, heads = 1, 50, 32, 2
    x, w_qkv, b_qkv, w_out, b_out, lqw, lqb, lkw, lkb, alpha = _inputs(b, n, c, heads, torch.float32)
    out = sparse_global_attention(x, w_qkv, b_qkv, w_out, b_out, lqw, lqb, lkw, lkb, alpha, n, heads, backend=backend)
    qkv = F.linear(x, w_qkv, b_qkv).view(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)  # (3, B, h, N, hd)
    q = F.layer_norm(qkv[0], (c // heads,), lqw, lqb)
    k = F.layer_norm(qkv[1], (c // heads,), lkw, lkb)
    o = F.scaled_dot_product_attention(q, k, qkv[2]).transpose(1, 2).reshape(b, n, c)
    torch.testing.assert_close(out, x + alpha * F.linear(o, w_out, b_out), atol=1e-5, rtol=1e-5)


def test_only_the_highest_energy_tokens_change():
    inputs = _inputs(1, 60, 32, 2, torch.float32)
    out = sparse_global_attention(*inputs, 10, 2, backend="triton")
    changed = (out != inputs[0]).any(-1)[0]
    top = torch.topk(inputs[0][0].square().sum(-1), 10).indices
    assert changed.nonzero().flatten().sort().values.tolist() == top.sort().values.tolist()


def test_module_starts_as_identity_and_keeps_shapes():
    block = SparseGlobalBlockGated(SparseGlobalConfig(dim=32, heads=2, topk=16), backend="triton").to(DEVICE)
    x = torch.randn(2, 32, 5, 9, device=DEVICE)  # (B, C, H, W)
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.alpha.fill_(0.5)
    y = block(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    tokens = x.flatten(2).transpose(1, 2)
    torch.testing.assert_close(block(tokens), y.flatten(2).transpose(1, 2))


@pytest.mark.parametrize("kwargs", [{"dim": 30, "heads": 4}, {"dim": 32, "topk": 0}, {"dim": 32, "eps": 0.0}],
                         ids=["heads", "topk", "eps"])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(k for k in kwargs if k != "dim"))):
        SparseGlobalConfig(**kwargs)


def test_token_energy_kernel():
    from depthtracker.kernels.sparse_global.triton import token_energy

    x = torch.randn(2, 45, 200, device=DEVICE)  # C ragged against the 128-channel chunk
    torch.testing.assert_close(token_energy(x), x.square().sum(-1), atol=1e-4, rtol=1e-5)
