import math

import pytest
import torch
import torch.nn.functional as F

from ds_parrots.config import ModelConfig
from ds_parrots.models import build_model
from ds_parrots.models.moe import MoEFeedForward, expert_load, load_balancing_loss, route, z_loss
from ds_parrots.parallel.router_capture import RouterCapture


def test_route_picks_top_k_and_renormalizes():
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0], [3.0, 0.0, 0.0, 3.0]])
    weights, experts = route(logits, 2)
    assert sorted(experts[0].tolist()) == [1, 2]
    assert sorted(experts[1].tolist()) == [0, 3]
    # Token 0: softmax restricted to experts 1 and 2 -> e^2 / (e^2 + e^1).
    w1 = weights[0][experts[0].tolist().index(1)].item()
    assert w1 == pytest.approx(math.exp(2) / (math.exp(2) + math.exp(1)), rel=1e-6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    torch.testing.assert_close(weights[1], torch.tensor([0.5, 0.5]))


def test_load_balancing_loss_by_hand():
    # 2 tokens, 2 experts, top-1. Token 0 -> expert 0 (p = [e/(e+1), 1/(e+1)]), token 1 -> expert 0 as well.
    logits = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    p0 = torch.softmax(logits, -1)
    f = torch.tensor([1.0, 0.0])  # both assignments on expert 0
    expected = 2 * float((f * p0.mean(0)).sum())
    assert load_balancing_loss(logits, 1).item() == pytest.approx(expected, rel=1e-6)


def test_load_balancing_loss_is_one_when_uniform():
    logits = torch.zeros(8, 4)
    logits[torch.arange(8), torch.arange(8) % 4] = 0.0  # all probabilities equal; ties choose by index
    # Uniform probabilities: sum_e f_e * 1/E * E = 1 whatever the assignment.
    assert load_balancing_loss(logits, 2).item() == pytest.approx(1.0)


def test_z_loss_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    expected = (math.log(2.0) ** 2 + math.log(4.0) ** 2) / 2
    assert z_loss(logits).item() == pytest.approx(expected, rel=1e-6)


def test_expert_load_fractions():
    logits = torch.tensor([[5.0, 1.0, 0.0], [5.0, 0.0, 1.0], [0.0, 5.0, 1.0]])
    load = expert_load(logits, 1)
    torch.testing.assert_close(load, torch.tensor([2 / 3, 1 / 3, 0.0]))


def _reference(moe: MoEFeedForward, x: torch.Tensor) -> torch.Tensor:
    """Token-by-token: out_t = sum over chosen experts of weight * SwiGLU_e(x_t)."""
    flat = x.reshape(-1, x.shape[-1])
    weights, experts = route(moe.gate(flat), moe.top_k)
    out = torch.zeros_like(flat)
    F_ = moe.experts.ffn_dim
    for t in range(flat.shape[0]):
        for w, e in zip(weights[t], experts[t]):
            gu = moe.experts.gate_up_proj[e] @ flat[t]
            h = F.silu(gu[:F_]) * gu[F_:]
            out[t] += w * (moe.experts.down_proj[e] @ h)
    return out.reshape(x.shape)


@pytest.mark.parametrize("top_k", [1, 2])
def test_moe_forward_and_grads_match_per_token_reference(top_k):
    torch.manual_seed(1)
    moe = MoEFeedForward(16, 12, 6, top_k)
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 7, 16, requires_grad=True)
    out = moe(x)
    ref = _reference(moe, x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), [x, moe.experts.gate_up_proj, moe.gate.weight])
    ref_grads = torch.autograd.grad((ref * g).sum(), [x, moe.experts.gate_up_proj, moe.gate.weight])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_moe_all_tokens_to_one_expert_and_empty_experts():
    torch.manual_seed(2)
    moe = MoEFeedForward(8, 8, 4, 1)
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.3)
    with torch.no_grad():
        moe.gate.weight.zero_()
        moe.gate.weight[2] = 0.0
    x = torch.randn(5, 8)
    with torch.no_grad():
        moe.gate.weight[2] += 100 * x.mean(0) / x.mean(0).norm()
    # Steer every token to expert 2 with a huge bias on its row direction.
    x = x + 10 * moe.gate.weight[2] / moe.gate.weight[2].norm()
    assert (route(moe.gate(x), 1)[1] == 2).all()
    torch.testing.assert_close(moe(x), _reference(moe, x), rtol=1e-5, atol=1e-5)


def test_router_capture_collects_every_layer():
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=30, d_model=16, n_layers=3, n_heads=2, num_experts=4, top_k=2, max_seq_len=16
    )
    model = build_model(cfg)
    capture = RouterCapture(model, top_k=2)
    assert capture.num_layers == 3
    model(torch.randint(0, 30, (2, 5)))
    stats = capture.pop()
    assert sorted(stats.load) == [0, 1, 2]
    for frac in stats.load.values():
        assert frac.sum().item() == pytest.approx(1.0)
    assert stats.aux_loss.requires_grad and stats.z_loss.requires_grad
    # Recomputing by hand from layer 0's router gives the same z-loss contribution.
    assert capture.pop() is None


def test_router_capture_skips_no_grad_forwards():
    # Evaluation runs under no_grad between training steps: it must not leak into the next step's aux loss.
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=30, d_model=16, n_layers=2, n_heads=2, num_experts=4, top_k=2, max_seq_len=16
    )
    model = build_model(cfg)
    capture = RouterCapture(model, top_k=2)
    x = torch.randint(0, 30, (2, 5))
    with torch.no_grad():
        model(torch.randint(0, 30, (3, 7)))
    assert capture.pop() is None
    model(x)
    alone = capture.pop()
    with torch.no_grad():
        model(torch.randint(0, 30, (3, 7)))
    model(x)
    torch.testing.assert_close(capture.pop().aux_loss, alone.aux_loss)
