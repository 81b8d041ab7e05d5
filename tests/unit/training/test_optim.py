"""The learning-rate schedule and the weight-decay parameter groups."""

import pytest

from ds_parrots.config import ModelConfig, OptimConfig
from ds_parrots.models import build_model
from ds_parrots.training.optim import lr_factor, param_groups

MOE = ModelConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, num_experts=8, max_seq_len=8)
DENSE = ModelConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, max_seq_len=8)


def test_schedule_warmup_then_linear_decay():
    optim = OptimConfig(warmup_frac=0.2, final_lr_frac=0.0)
    factors = [lr_factor(s, 10, optim) for s in range(10)]
    assert factors[:2] == [0.5, 1.0]  # 2 warmup steps
    assert factors[2] == 1.0
    assert factors[-1] == pytest.approx(1 - 7 / 8)
    assert all(a >= b for a, b in zip(factors[1:], factors[2:]))


def test_no_weight_decay_on_norms():
    model = build_model(MOE)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all("norm" in names[id(p)] for p in no_decay["params"])
    assert any("experts.gate_up_proj" in names[id(p)] for p in decay["params"])
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
