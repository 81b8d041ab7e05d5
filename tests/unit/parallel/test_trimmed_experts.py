"""The native backend's trimmed experts (each expert on its occupied capacity slots) against DeepSpeed's
own Experts (every expert on every slot): outputs and gradients, fresh random slot fillings, skewed and
degenerate ones, one and two source ranks."""

import copy

import pytest
import torch

from ds_parrots.config import ModelConfig, MoEConfig
from ds_parrots.models.transformer import SwiGLU
from ds_parrots.parallel.moe_backends import NativeMoEFeedForward, _trimmed_experts_class
from ds_parrots.parallel.trimmed_experts import occupied_slots

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.bfloat16: dict(rtol=1e-2, atol=1e-2)}


def deepspeed_and_trimmed(num_experts: int, d: int, dtype: torch.dtype):
    from deepspeed.moe.experts import Experts

    torch.manual_seed(0)
    full = Experts(SwiGLU(d, 2 * d), num_experts).to(dtype)
    for p in full.parameters():  # distinct experts (Experts deep-copies one)
        torch.nn.init.normal_(p, std=0.3)
    trimmed = copy.deepcopy(full)
    trimmed.__class__ = _trimmed_experts_class()
    return full, trimmed


def slotted_input(gen, groups: int, num_experts: int, capacity: int, d: int, kind: str) -> torch.Tensor:
    """[G, E, C, d] filled as GShard dispatch fills it: slots 0..n-1 of each (source, expert), zeros after."""
    if kind == "one":  # every token of every source to expert 1, at full capacity
        loads = torch.zeros(groups, num_experts, dtype=torch.long)
        loads[:, 1] = capacity
    elif kind == "empty":  # half the experts get nothing
        loads = torch.randint(0, capacity + 1, (groups, num_experts), generator=gen)
        loads[:, torch.randperm(num_experts, generator=gen)[: num_experts // 2]] = 0
    elif kind == "none":
        loads = torch.zeros(groups, num_experts, dtype=torch.long)
    else:
        loads = torch.randint(0, capacity + 1, (groups, num_experts), generator=gen)
    x = torch.randn(groups, num_experts, capacity, d, generator=gen)
    slot = torch.arange(capacity)
    x = x * (slot[None, None, :] < loads[:, :, None]).unsqueeze(-1)
    return x


KINDS = ["uniform", "empty", "one", "none"]


@pytest.mark.parametrize("groups", [1, 2], ids=["ep1", "ep2_sources"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_trimmed_matches_deepspeed_experts(groups, kind, dtype):
    num_experts, capacity, d = 6, 9, 16
    full, trimmed = deepspeed_and_trimmed(num_experts, d, dtype)
    gen = torch.Generator().manual_seed(10 * groups + KINDS.index(kind))
    x = slotted_input(gen, groups, num_experts, capacity, d, kind).to(dtype)
    dy = torch.randn(x.shape, generator=gen).to(dtype)
    outs, grads = [], []
    for module in (full, trimmed):
        xi = x.clone().requires_grad_()
        out = module(xi)
        params = list(module.parameters())
        grads.append(torch.autograd.grad(out, [xi, *params], dy))
        outs.append(out)
    assert outs[1].shape == x.shape and outs[1].dtype == dtype
    torch.testing.assert_close(outs[1], outs[0], **TOL[dtype])
    for got, want in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, want, **TOL[dtype])
    # The slots past the occupied ones are zero in the output: nothing leaks into the combine step.
    assert (outs[1][x.ne(0).any(-1).logical_not()] == 0).all()


def test_a_zero_token_inside_the_occupied_slots_is_still_exact():
    full, trimmed = deepspeed_and_trimmed(4, 8, torch.float32)
    x = torch.randn(1, 4, 5, 8)
    x[0, 2, 3:] = 0  # expert 2 holds 3 tokens
    x[0, 1, 1] = 0  # a routed token that happens to be all zeros, before expert 1's last token
    assert occupied_slots(x) == [[5], [5], [3], [5]]
    torch.testing.assert_close(trimmed(x), full(x), rtol=1e-6, atol=1e-7)


def test_occupied_slots_per_source_and_expert():
    x = torch.zeros(2, 3, 4, 2)
    x[0, 0, :2] = 1
    x[1, 0, :4] = 1
    x[1, 2, 0, 1] = -1  # one non-zero element is enough
    assert occupied_slots(x) == [[2, 4], [0, 0], [0, 1]]
    assert occupied_slots(torch.zeros(1, 2, 0, 3)) == [[0], [0]]


@pytest.mark.parametrize("capacity_factor", [None, 1.0], ids=["dropless", "dropping"])
def test_native_layer_trimmed_equals_deepspeed_experts(capacity_factor, process_group):
    cfg = ModelConfig(
        vocab_size=64, d_model=32, n_layers=1, n_heads=4, num_experts=8, top_k=2, max_seq_len=64
    )
    torch.manual_seed(0)
    ours = NativeMoEFeedForward(cfg, MoEConfig(backend="native", capacity_factor=capacity_factor))
    theirs = NativeMoEFeedForward(
        cfg, MoEConfig(backend="native", capacity_factor=capacity_factor, native_experts="deepspeed")
    )
    assert type(ours.moe.deepspeed_moe.experts).__name__ == "TrimmedExperts"
    assert type(theirs.moe.deepspeed_moe.experts).__name__ == "Experts"
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 16, 32, generator=gen)
    dy = torch.randn(4, 16, 32, generator=gen)
    results = []
    for layer in (ours, theirs):
        xi = x.clone().requires_grad_()
        out = layer(xi)
        results.append((out, *torch.autograd.grad(out, [xi, *layer.parameters()], dy)))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
