"""The grouped experts (torch._grouped_mm) and the MoE layer built on them against the per-expert loop
reference: outputs and gradients (input and every parameter), fresh random inputs, skewed and degenerate
routing, and an upstream gradient of any layout (stride 0 included)."""

import pytest
import torch
import torch.nn.functional as F

from ds_parrots.models.grouped_experts import grouped_swiglu
from ds_parrots.models.moe import MoEFeedForward, route

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


def assert_close(actual, expected, dtype):
    """fp32: tight. bf16 (8 significant bits, intermediates rounded too): within 2% of the tensor's scale."""
    tol = dict(TOL[dtype])
    if dtype == torch.bfloat16:
        tol["atol"] = tol["atol"] * max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual.float(), expected.float(), **tol)


def loop_swiglu(x, counts, gate_up, down):
    """Reference: per-expert F.linear under plain autograd."""
    w_gu = torch.cat(gate_up, dim=1)
    ffn = down.shape[-1]
    outs, start = [], 0
    for e, n in enumerate(counts):
        g, u = F.linear(x[start : start + n], w_gu[e]).split(ffn, dim=-1)
        outs.append(F.linear(F.silu(g) * u, down[e]))
        start += n
    return torch.cat(outs)


def random_counts(gen, num_experts, rows, kind):
    if kind == "one":  # every row to expert 1
        return [rows if e == 1 else 0 for e in range(num_experts)]
    if kind == "empty":  # half the experts get nothing
        live = torch.randperm(num_experts, generator=gen)[: num_experts // 2]
        counts = torch.bincount(
            live[torch.randint(0, len(live), (rows,), generator=gen)], minlength=num_experts
        )
        return counts.tolist()
    return torch.bincount(
        torch.randint(0, num_experts, (rows,), generator=gen), minlength=num_experts
    ).tolist()


def assert_kernel_matches_loop(counts, split, dtype, seed=0, dy_kind="random", d=24, ffn=24):
    gen = torch.Generator().manual_seed(seed)
    num_experts = len(counts)
    rows = sum(counts)
    x = torch.randn(rows, d, generator=gen).to(dtype).requires_grad_()
    w_gu = torch.randn(num_experts, 2 * ffn, d, generator=gen) * 0.3
    gate_up = [w.clone().to(dtype).requires_grad_() for w in (w_gu.split(ffn, dim=1) if split else [w_gu])]
    down = (torch.randn(num_experts, d, ffn, generator=gen) * 0.3).to(dtype).requires_grad_()
    dy = {
        "random": lambda: torch.randn(rows, d, generator=gen).to(dtype),
        # What out.sum().backward() sends: one value expanded over every element.
        "stride0": lambda: torch.ones((), dtype=dtype).expand(rows, d),
        "transposed": lambda: torch.randn(d, rows, generator=gen).to(dtype).t(),
    }[dy_kind]()
    inputs = [x, *gate_up, down]

    out = grouped_swiglu(x, torch.tensor(counts), gate_up, down)
    grads = torch.autograd.grad(out, inputs, dy)
    # The reference runs in fp32 from the same (rounded) values: bf16 is compared with the exact answer.
    ref_inputs = [t.detach().float().requires_grad_() for t in inputs]
    ref = loop_swiglu(ref_inputs[0], counts, ref_inputs[1:-1], ref_inputs[-1])
    ref_grads = torch.autograd.grad(ref, ref_inputs, dy.float())
    assert_close(out, ref, dtype)
    for g, r in zip(grads, ref_grads):
        assert g.dtype == dtype
        assert_close(g, r, dtype)
    return out, grads


@pytest.mark.parametrize("kind", ["uniform", "empty", "one"])
@pytest.mark.parametrize("split", [False, True], ids=["mixtral_gate_up", "autoep_w1_w3"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_kernel_matches_loop(kind, split, dtype):
    gen = torch.Generator().manual_seed(["uniform", "empty", "one"].index(kind) * 2 + split)
    assert_kernel_matches_loop(random_counts(gen, 8, 53, kind), split, dtype)


def test_kernel_empty_experts_get_zero_weight_gradients():
    counts = [0, 7, 0, 5]
    _, (_, dgu, ddown) = assert_kernel_matches_loop(counts, False, torch.float32)
    for e in (0, 2):
        assert dgu[e].abs().max() == 0 and ddown[e].abs().max() == 0
    assert dgu[1].abs().max() > 0 and ddown[3].abs().max() > 0


@pytest.mark.parametrize("dy_kind", ["stride0", "transposed"])
def test_kernel_takes_any_gradient_layout(dy_kind):
    # torch._grouped_mm's own backward rejects a stride-0 gradient ("Invalid strides/sizes").
    assert_kernel_matches_loop([5, 0, 9, 2], True, torch.float32, dy_kind=dy_kind)


def test_kernel_sum_backward():
    x = torch.randn(6, 8, requires_grad=True)
    w = torch.randn(2, 10, 8, requires_grad=True)
    down = torch.randn(2, 8, 5, requires_grad=True)
    grouped_swiglu(x, torch.tensor([4, 2]), (w,), down).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (x, w, down))


@pytest.mark.parametrize("dtype,d,ffn", [(torch.float32, 10, 24), (torch.bfloat16, 24, 20)])
def test_kernel_unaligned_sizes_run_the_loop(dtype, d, ffn):
    # torch._grouped_mm needs 16-byte aligned rows: a width of 10 in fp32 or an FFN of 20 in bf16 has none.
    assert_kernel_matches_loop([5, 0, 9, 2], True, dtype, d=d, ffn=ffn)


def test_kernel_no_rows_at_all():
    out, grads = assert_kernel_matches_loop([0, 0, 0], False, torch.float32)
    assert out.shape == (0, 24)


def _layers(d, ffn, num_experts, top_k, seed):
    torch.manual_seed(seed)
    loop = MoEFeedForward(d, ffn, num_experts, top_k, expert_impl="loop")
    for p in loop.parameters():
        torch.nn.init.normal_(p, std=0.3)
    fast = MoEFeedForward(d, ffn, num_experts, top_k)
    fast.load_state_dict(loop.state_dict())
    return loop, fast


def assert_layer_matches_loop(loop, fast, x, dtype=torch.float32):
    loop, fast = loop.to(dtype), fast.to(dtype)
    x = x.to(dtype)
    dy = torch.randn_like(x)
    results = []
    for layer in (loop, fast):
        xi = x.detach().clone().requires_grad_()
        out = layer(xi)
        params = [layer.gate.weight, layer.experts.gate_up_proj, layer.experts.down_proj]
        results.append((out, torch.autograd.grad(out, [xi, *params], dy)))
    (ref, ref_grads), (out, grads) = results
    assert_close(out, ref, dtype)
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, dtype)


@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layer_matches_loop_uniform_routing(top_k, seed):
    loop, fast = _layers(16, 12, 8, top_k, seed)
    x = torch.randn(3, 11, 16, generator=torch.Generator().manual_seed(50 + seed))
    assert_layer_matches_loop(loop, fast, x)


@pytest.mark.parametrize("top_k", [1, 2])
def test_layer_matches_loop_with_empty_experts(top_k):
    # 3 tokens over 16 experts: at least 10 experts receive nothing.
    loop, fast = _layers(16, 12, 16, top_k, 3)
    x = torch.randn(3, 16)
    counts = torch.bincount(route(fast.gate(x), top_k)[1].reshape(-1), minlength=16)
    assert (counts == 0).sum() >= 10
    assert_layer_matches_loop(loop, fast, x)


@pytest.mark.parametrize("top_k", [1, 2])
def test_layer_matches_loop_all_tokens_to_one_expert(top_k):
    loop, fast = _layers(16, 12, 6, top_k, 4)
    with torch.no_grad():
        for layer in (loop, fast):
            layer.gate.weight[4] += 5.0  # a big logit for expert 4 on inputs with positive entries
    x = torch.rand(2, 9, 16) + 0.5
    assert (route(fast.gate(x.reshape(-1, 16)), top_k)[1][:, 0] == 4).all()
    assert_layer_matches_loop(loop, fast, x)


def test_layer_matches_loop_bf16():
    loop, fast = _layers(16, 16, 8, 2, 5)
    assert_layer_matches_loop(loop, fast, torch.randn(4, 7, 16), torch.bfloat16)


def test_state_dict_names_unchanged():
    # Checkpoints, consolidation and the Hugging Face export read these names.
    loop, fast = _layers(8, 8, 4, 2, 0)
    assert list(fast.state_dict()) == ["gate.weight", "experts.gate_up_proj", "experts.down_proj"]
    assert list(loop.state_dict()) == list(fast.state_dict())
