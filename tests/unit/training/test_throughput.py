"""MFU: FLOPs per token x tokens / time / peak, by hand for one small config; the peak table; the progress line
(what a real training run writes to TensorBoard: tests/integration/training/test_throughput_tensorboard.py)."""

import pytest

from ds_parrots.config import ModelConfig, TrainConfig
from ds_parrots.errors import ConfigError
from ds_parrots.models.counting import flops_per_token
from ds_parrots.training.throughput import device_peak_tflops, lookup_peak_tflops, throughput


def test_mfu_by_hand_for_a_small_moe():
    cfg = ModelConfig(
        vocab_size=10,
        d_model=8,
        n_layers=1,
        n_heads=2,
        n_kv_heads=1,
        num_experts=4,
        top_k=2,
        ffn_dim=16,
        max_seq_len=16,
    )
    # Multiply-adds per token, one matmul at a time (weights [in x out]):
    q_proj = 8 * 8  # 2 heads x head size 4
    k_proj = 8 * 4  # 1 kv head x 4
    v_proj = 8 * 4
    o_proj = 8 * 8
    router = 8 * 4  # d x E
    expert = 8 * 16 + 8 * 16 + 16 * 8  # gate, up, down of one expert (FFN 16)
    experts = 2 * expert  # top-2: a token runs two of the four
    lm_head = 8 * 10
    weights = q_proj + k_proj + v_proj + o_proj + router + experts + lm_head
    assert weights == 64 + 32 + 32 + 64 + 32 + 768 + 80 == 1072
    # Scores q.k and weighted values over 16 positions: 2 heads x 4 x 16 multiply-adds each, forward;
    # x3 for forward + backward, x2 FLOPs per multiply-add: 12 L H Q T.
    attention = 12 * 1 * 2 * 4 * 16
    per_token = 6 * weights + attention
    assert per_token == 6432 + 1536 == 7968
    assert flops_per_token(cfg, seq_len=16) == per_token

    # One step: 2 ranks x 4 sequences x 16 tokens in 0.5 s, on devices of peak 1e-5 TFLOP/s.
    tokens = 2 * 4 * 16
    flops = tokens * per_token
    out = throughput(tokens, flops, seconds=0.5, world_size=2, peak_tflops=1e-5)
    assert out["tokens_per_s"] == pytest.approx(256.0)
    achieved = 128 * 7968 / 2 / 0.5  # FLOP/s per device
    assert out["tflops_per_device"] == pytest.approx(achieved / 1e12)
    assert out["mfu"] == pytest.approx(achieved / 1e7)  # 1e-5 TFLOP/s = 1e7 FLOP/s
    assert "mfu" not in throughput(tokens, flops, 0.5, 2, peak_tflops=None)


@pytest.mark.parametrize(
    "name,precision,peak",
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4),
        ("NVIDIA H100 80GB HBM3", "fp32", 66.9),
        ("NVIDIA H100 PCIe", "bf16", 756.0),
        ("NVIDIA H200", "bf16", 989.4),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
        ("NVIDIA A100 80GB PCIe", "fp32", 19.5),
        ("NVIDIA GeForce RTX 4090", "bf16", None),
    ],
)
def test_peak_table(name, precision, peak):
    assert lookup_peak_tflops(name, precision) == peak


def test_peak_flag_wins_and_zero_means_unknown():
    assert device_peak_tflops(123.0, "fp32") == 123.0
    assert device_peak_tflops(0.0, "bf16") is None
    assert device_peak_tflops(None, "fp32") is None  # this CPU machine: no reliable peak
    with pytest.raises(ConfigError, match="--train.peak-tflops=-1"):
        TrainConfig(peak_tflops=-1.0)


def test_progress_line_shows_throughput_and_mfu():
    from ds_parrots.training.logger import console_fields

    line = console_fields(
        {
            "loss": 2.5,
            "lr": 1e-3,
            "tokens_per_s": 12345.6,
            "tflops_per_device": 0.0421,
            "mfu": 0.0842,
            "grad_norm": 1.0,
        }
    )
    assert line == {"loss": "2.5", "lr": "0.001", "tok/s": "12,346", "TFLOP/s": "0.0421", "mfu": "8.4%"}
    assert "mfu" not in console_fields({"loss": 2.5, "tokens_per_s": 1.0, "tflops_per_device": 0.1})
