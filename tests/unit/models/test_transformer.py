import math

import pytest
import torch

from ds_parrots.config import ModelConfig
from ds_parrots.models import build_model
from ds_parrots.models.transformer import Attention, RMSNorm, apply_rotary, rotary_tables


def small(**kw) -> ModelConfig:
    base = dict(vocab_size=40, d_model=32, n_layers=2, n_heads=4, max_seq_len=24)
    base.update(kw)
    return ModelConfig(**base)


@pytest.mark.parametrize("experts", [1, 4])
def test_logits_shape(experts):
    torch.manual_seed(0)
    model = build_model(small(num_experts=experts))
    x = torch.randint(0, 40, (3, 11))
    assert model(x).shape == (3, 11, 40)


@pytest.mark.parametrize("experts", [1, 4])
def test_future_token_cannot_change_past_logits(experts):
    torch.manual_seed(0)
    model = build_model(small(num_experts=experts)).eval()
    x = torch.randint(0, 40, (2, 12))
    y = x.clone()
    y[:, 7] = (y[:, 7] + 5) % 40
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_rotary_matches_complex_rotation():
    head_dim, seq, theta = 8, 10, 10000.0
    cos, sin = rotary_tables(head_dim, seq, theta)
    x = torch.randn(1, 1, seq, head_dim)
    out = apply_rotary(x, cos, sin)
    half = head_dim // 2
    for pos in range(seq):
        for i in range(half):
            angle = pos * theta ** (-2 * i / head_dim)
            z = complex(x[0, 0, pos, i], x[0, 0, pos, i + half]) * complex(math.cos(angle), math.sin(angle))
            assert out[0, 0, pos, i].item() == pytest.approx(z.real, abs=1e-5)
            assert out[0, 0, pos, i + half].item() == pytest.approx(z.imag, abs=1e-5)


def test_rotary_scores_depend_only_on_relative_position():
    cos, sin = rotary_tables(16, 32, 10000.0)
    q, k = torch.randn(16), torch.randn(16)

    def score(pq, pk):
        qq = apply_rotary(q.expand(1, 1, 32, 16).clone(), cos, sin)[0, 0, pq]
        kk = apply_rotary(k.expand(1, 1, 32, 16).clone(), cos, sin)[0, 0, pk]
        return float(qq @ kk)

    assert score(9, 4) == pytest.approx(score(20, 15), rel=1e-4)


def test_rmsnorm_formula():
    norm = RMSNorm(6, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(3, 6)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * torch.arange(1.0, 7.0)
    torch.testing.assert_close(norm(x), expected)


def test_grouped_query_attention_equals_repeated_kv_heads():
    torch.manual_seed(0)
    gqa = Attention(small(n_heads=4, n_kv_heads=2))
    mha = Attention(small(n_heads=4, n_kv_heads=4))
    head = 8
    with torch.no_grad():
        mha.q_proj.weight.copy_(gqa.q_proj.weight)
        mha.o_proj.weight.copy_(gqa.o_proj.weight)
        for proj in ("k_proj", "v_proj"):
            w = getattr(gqa, proj).weight.view(2, head, 32)
            getattr(mha, proj).weight.copy_(w.repeat_interleave(2, dim=0).reshape(32, 32))
    cos, sin = rotary_tables(head, 24, 10000.0)
    x = torch.randn(2, 9, 32)
    torch.testing.assert_close(gqa(x, cos[:9], sin[:9]), mha(x, cos[:9], sin[:9]))


def test_no_biases_and_untied_by_default():
    model = build_model(small(num_experts=4))
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    tied = build_model(small(tie_embeddings=True))
    assert tied.lm_head.weight is tied.model.embed_tokens.weight


def test_mixtral_parameter_names():
    names = {n for n, _ in build_model(small(num_experts=4)).named_parameters()}
    assert {
        "model.embed_tokens.weight",
        "model.norm.weight",
        "lm_head.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.mlp.gate.weight",
        "model.layers.1.mlp.experts.gate_up_proj",
        "model.layers.1.mlp.experts.down_proj",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.post_attention_layernorm.weight",
    } <= names


def test_sequence_longer_than_max_seq_len_is_refused():
    model = build_model(small(max_seq_len=8))
    with pytest.raises(ValueError, match="max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
