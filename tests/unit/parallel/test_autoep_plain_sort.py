"""AutoEP's layer with the plain-sort token path (parallel/autoep_tokens.py) against DeepSpeed's own layer running
its per-expert loop, from the same weights: outputs, input gradients and every parameter gradient, for random
routing, experts left empty, all tokens on one expert, and upstream gradients of any layout."""

import json

import pytest
import torch

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig, shipped_file
from ds_parrots.models import build_model
from ds_parrots.parallel.initialize import parallelize

D, E = 16, 8


def layer(autoep_experts: str, tmp_path, top_k: int = 2):
    cfg = ModelConfig(
        vocab_size=32, d_model=D, n_layers=1, n_heads=2, num_experts=E, top_k=top_k, max_seq_len=32
    )
    template = json.loads(shipped_file("zero0.json").read_text())
    # The reference: DeepSpeed's layer and its per-expert loop, sharing no kernel with the plain-sort path.
    template["expert_parallel"] = {"use_grouped_mm": autoep_experts == "grouped"}
    path = tmp_path / f"{autoep_experts}.json"
    path.write_text(json.dumps(template))
    train = TrainConfig(
        steps=1, global_batch=1, micro_batch=1, zero_stage=0, precision="fp32", ds_config=str(path)
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    parallel = parallelize(model, cfg, MoEConfig(autoep_experts=autoep_experts), OptimConfig(), train)
    parallel.capture.remove()
    mlp = parallel.engine.module.model.layers[0].mlp
    parallel.close()
    return mlp


def run(mlp, x, dy_kind):
    x = x.detach().clone().requires_grad_()
    out = mlp(x)
    out = out[0] if isinstance(out, tuple) else out
    if dy_kind == "sum":  # a stride-0 gradient reaches the experts' output
        out.sum().backward()
    else:
        out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(7)))
    grads = {n: p.grad.clone() for n, p in mlp.named_parameters()}
    return out.detach(), x.grad, grads


@pytest.mark.parametrize("routing", ["random", "empty_experts", "one_expert"])
@pytest.mark.parametrize("dy_kind", ["random", "sum"])
def test_plain_sort_matches_deepspeeds_loop(process_group, tmp_path, routing, dy_kind):
    ours, ref = layer("grouped", tmp_path), layer("deepspeed", tmp_path)
    assert (
        type(ours).__name__ == "PlainSortAutoEPMoELayer"
        and type(ours.experts).__name__ == "SafeGroupedExperts"
    )
    assert type(ref).__name__ == "AutoEPMoELayer" and not ref.experts.use_grouped_mm
    ref.load_state_dict(ours.state_dict())
    gen = torch.Generator().manual_seed(["random", "empty_experts", "one_expert"].index(routing))
    x = torch.randn(2, 9, D, generator=gen)
    if routing == "empty_experts":
        x = x[:1, :2]  # 2 tokens x top-2 over 8 experts: at least 4 experts get nothing
    if routing == "one_expert":
        with torch.no_grad():
            for m in (ours, ref):
                m.router.gate.weight[3] += 20.0
        x = torch.rand(2, 9, D, generator=gen) + 0.5
    assert ours._plain_sort_applies(x)  # on the CPU the plain path runs, not DeepSpeed's forward
    counts_before = ours.tokens_per_expert.clone()
    out, dx, grads = run(ours, x, dy_kind)
    ref_out, ref_dx, ref_grads = run(ref, x, dy_kind)
    if routing == "one_expert":
        assert (ours.tokens_per_expert - counts_before)[3] == x.shape[0] * x.shape[1]
    if routing == "empty_experts":
        assert ((ours.tokens_per_expert - counts_before) == 0).sum() >= 4
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dx, ref_dx, rtol=1e-5, atol=1e-6)
    assert sorted(grads) == sorted(ref_grads)
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    # The expert load counter advanced alike.
    torch.testing.assert_close(ours.tokens_per_expert, ref.tokens_per_expert)
