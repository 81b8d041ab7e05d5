"""The DeepSpeed config built from a template and the flags, and the checks made before launch."""

import json

import pytest

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig
from ds_parrots.errors import ConfigError
from ds_parrots.parallel.ds_config import build_ds_config, gradient_accumulation, validate

MOE = ModelConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, num_experts=8, max_seq_len=8)
DENSE = ModelConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, max_seq_len=8)


def test_ds_config_from_template_and_flags():
    train = TrainConfig(global_batch=32, micro_batch=4, zero_stage=3, precision="bf16")
    cfg = build_ds_config(MOE, MoEConfig(ep_size=2), OptimConfig(grad_clip=0.5), train, world_size=2)
    assert cfg["train_micro_batch_size_per_gpu"] == 4
    assert cfg["gradient_accumulation_steps"] == 4
    assert cfg["train_batch_size"] == 32
    assert cfg["gradient_clipping"] == 0.5
    assert cfg["zero_optimization"]["stage"] == 3
    assert cfg["bf16"]["enabled"] is True
    assert cfg["expert_parallel"]["enabled"] and cfg["expert_parallel"]["autoep_size"] == 2
    assert cfg["expert_parallel"]["preset_model"] == "mixtral"


def test_one_dense_fp32_rank_all_reduces_instead_of_reduce_scatter():
    def zero(model, stage=2, world_size=1, precision="fp32"):
        train = TrainConfig(
            global_batch=8, micro_batch=8 // world_size, zero_stage=stage, precision=precision
        )
        return build_ds_config(model, MoEConfig(), OptimConfig(), train, world_size)["zero_optimization"]

    assert zero(DENSE)["reduce_scatter"] is False
    assert zero(DENSE, stage=1)["reduce_scatter"] is False
    for kept in (zero(DENSE, world_size=2), zero(MOE), zero(DENSE, stage=3), zero(DENSE, precision="bf16")):
        assert "reduce_scatter" not in kept  # DeepSpeed's default, reduce-scatter


def test_a_templates_reduce_scatter_is_kept(tmp_path):
    template = tmp_path / "mine.json"
    template.write_text(json.dumps({"zero_optimization": {"stage": 2, "reduce_scatter": True}}))
    train = TrainConfig(
        global_batch=8, micro_batch=8, zero_stage=2, precision="fp32", ds_config=str(template)
    )
    cfg = build_ds_config(DENSE, MoEConfig(), OptimConfig(), train, world_size=1)
    assert cfg["zero_optimization"]["reduce_scatter"] is True


def test_ds_config_keeps_unknown_template_fields(tmp_path):
    template = tmp_path / "mine.json"
    template.write_text(
        json.dumps(
            {"zero_optimization": {"stage": 1, "reduce_bucket_size": 123}, "wall_clock_breakdown": True}
        )
    )
    train = TrainConfig(
        global_batch=8, micro_batch=8, zero_stage=2, precision="fp32", ds_config=str(template)
    )
    cfg = build_ds_config(DENSE, MoEConfig(), OptimConfig(), train, world_size=1)
    assert cfg["zero_optimization"] == {"stage": 2, "reduce_bucket_size": 123, "reduce_scatter": False}
    assert cfg["wall_clock_breakdown"] is True
    assert "expert_parallel" not in cfg


def test_ds_config_template_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        build_ds_config(DENSE, MoEConfig(), OptimConfig(), TrainConfig(ds_config=str(tmp_path / "x.json")), 1)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        build_ds_config(DENSE, MoEConfig(), OptimConfig(), TrainConfig(ds_config=str(bad)), 1)


def test_native_backend_refuses_zero3_before_launch():
    with pytest.raises(ConfigError, match="native MoE backend does not run under ZeRO-3"):
        validate(MOE, MoEConfig(backend="native"), TrainConfig(zero_stage=3), world_size=2)
    validate(
        MOE,
        MoEConfig(backend="native"),
        TrainConfig(zero_stage=2, global_batch=8, micro_batch=4),
        world_size=2,
    )


@pytest.mark.parametrize(
    "moe,world,match",
    [
        (MoEConfig(ep_size=3), 3, "not divisible by --moe.ep-size=3"),
        (MoEConfig(ep_size=4), 2, "does not divide the world size 2"),
        (MoEConfig(backend="autoep", capacity_factor=1.25), 1, "native backend only"),
    ],
)
def test_expert_parallel_errors(moe, world, match):
    with pytest.raises(ConfigError, match=match):
        validate(MOE, moe, TrainConfig(global_batch=12, micro_batch=1), world)


def test_global_batch_must_split_over_ranks():
    with pytest.raises(ConfigError, match="global-batch=10 is not a multiple"):
        gradient_accumulation(TrainConfig(global_batch=10, micro_batch=4), world_size=2)
    assert gradient_accumulation(TrainConfig(global_batch=16, micro_batch=4), world_size=2) == 2


def test_unset_micro_batch_is_each_ranks_share_of_the_global_batch():
    train = TrainConfig(global_batch=64)
    for world in (1, 2, 8):
        assert gradient_accumulation(train, world) == 1
        cfg = build_ds_config(DENSE, MoEConfig(), OptimConfig(), train, world)
        assert cfg["train_micro_batch_size_per_gpu"] == 64 // world
    with pytest.raises(ConfigError, match="does not split evenly over 3 ranks; set --train.micro-batch"):
        gradient_accumulation(train, 3)
