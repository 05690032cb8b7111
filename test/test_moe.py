"""Mixture-of-Experts FFN: top-k routing, no dropped tokens, shared expert, sorted path vs per-token reference."""

from __future__ import annotations

import pytest
import torch
from depthtracker.models.moe import MoEConfig, MoEFFN, load_balance_loss


def _moe(**kw) -> MoEFFN:
    torch.manual_seed(0)
    return MoEFFN(MoEConfig(**{"dim": 16, "hidden": 24, "num_experts": 4, "top_k": 2, "shared_hidden": 8, **kw}))


def test_routing_picks_top_k_with_renormalised_weights():
    moe = _moe()
    x = torch.randn(2, 13, 16)
    out = moe(x)
    probs = torch.softmax(moe.routers[0](x.reshape(-1, 16)), -1)
    top = torch.topk(probs, 2, dim=-1)
    assert torch.equal(out.expert_ids, top.indices)
    torch.testing.assert_close(out.weights, top.values / top.values.sum(-1, keepdim=True))
    assert out.y.shape == x.shape


@pytest.mark.parametrize("grouped", ["loop", "grouped"])
def test_sorted_path_equals_per_token_reference_even_when_routing_collapses(grouped):
    if grouped == "grouped" and not hasattr(torch, "_grouped_mm"):
        pytest.skip("this torch has no _grouped_mm")
    moe = _moe(grouped=grouped)
    x = torch.randn(3, 11, 16)
    torch.testing.assert_close(moe(x).y, moe.reference_forward(x), atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # every token prefers expert 0 then 1: no capacity limit, nothing may be dropped
        moe.routers[0].weight.zero_()
        moe.routers[0].weight[0, 0] = 50.0
        moe.routers[0].weight[1, 0] = 25.0
    x[..., 0] = x[..., 0].abs() + 1
    out = moe(x)
    assert torch.bincount(out.expert_ids.flatten(), minlength=4).tolist() == [33, 33, 0, 0]
    torch.testing.assert_close(out.y, moe.reference_forward(x), atol=1e-5, rtol=1e-5)


def test_grouped_and_loop_paths_have_equal_gradients():
    if not hasattr(torch, "_grouped_mm"):
        pytest.skip("this torch has no _grouped_mm")
    grads = []
    x = torch.randn(2, 9, 16)
    for mode in ("loop", "grouped"):
        moe = _moe(grouped=mode)
        xi = x.clone().requires_grad_(True)
        (moe(xi).y * torch.linspace(-1, 1, 16)).sum().backward()
        grads.append([xi.grad, moe.w1.grad, moe.w2.grad, moe.b1.grad, moe.routers[0].weight.grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_shared_expert_is_always_applied_and_every_parameter_gets_a_gradient():
    moe = _moe()
    x = torch.randn(1, 5, 16)
    with torch.no_grad():  # silence the routed experts: what remains is the shared expert alone
        moe.w2.zero_()
        moe.b2.zero_()
    torch.testing.assert_close(moe(x).y, moe.shared(x))
    moe = _moe(num_experts=8, top_k=1)
    moe(torch.randn(1, 2, 16)).y.sum().backward()  # 2 tokens, 8 experts: most get no rows
    assert all(p.grad is not None for p in moe.parameters())  # DDP without find_unused_parameters needs this


def test_load_balance_loss_is_minimal_for_uniform_routing():
    e, t = 4, 64
    uniform = load_balance_loss(torch.full((t, e), 1 / e), torch.arange(t * 2).remainder(e).view(t, 2), e)
    assert uniform.item() == pytest.approx(1.0)
    skew = torch.softmax(torch.tensor([2.0, 1.0, 0.0, 0.0]), 0).expand(t, e)
    skewed = load_balance_loss(skew, torch.tensor([[0, 1]]).expand(t, 2), e)
    collapsed = load_balance_loss(torch.tensor([1.0, 0, 0, 0]).expand(t, e), torch.zeros(t, 1, dtype=torch.long), e)
    assert uniform < skewed < collapsed and collapsed.item() == pytest.approx(e)


def test_task_conditioned_routers():
    moe = _moe(num_tasks=2)
    x = torch.randn(1, 40, 16)
    assert not torch.equal(moe(x, task=0).expert_ids, moe(x, task=1).expert_ids)
    with pytest.raises(ValueError, match="task=2"):
        moe(x, task=2)
    with pytest.raises(ValueError, match="top_k"):
        MoEConfig(num_experts=2, top_k=3)
