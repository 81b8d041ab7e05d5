import json

import pytest

from ds_parrots.errors import ConfigError
from ds_parrots.config import MoEConfig, ModelConfig, OptimConfig, TrainConfig
from ds_parrots.parallel.ds_config import build_ds_config, gradient_accumulation, validate
from ds_parrots.training.optim import lr_factor, param_groups
from ds_parrots.models import build_model

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


def test_ds_config_keeps_unknown_template_fields(tmp_path):
    template = tmp_path / "mine.json"
    template.write_text(json.dumps({"zero_optimization": {"stage": 1, "reduce_bucket_size": 123},
                                    "wall_clock_breakdown": True}))
    train = TrainConfig(global_batch=8, micro_batch=8, zero_stage=2, ds_config=str(template))
    cfg = build_ds_config(DENSE, MoEConfig(), OptimConfig(), train, world_size=1)
    assert cfg["zero_optimization"] == {"stage": 2, "reduce_bucket_size": 123}
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
    validate(MOE, MoEConfig(backend="native"), TrainConfig(zero_stage=2, global_batch=8, micro_batch=4), world_size=2)


@pytest.mark.parametrize("moe,world,match", [
    (MoEConfig(ep_size=3), 3, "not divisible by --moe.ep-size=3"),
    (MoEConfig(ep_size=4), 2, "does not divide the world size 2"),
    (MoEConfig(backend="autoep", capacity_factor=1.25), 1, "native backend only"),
])
def test_expert_parallel_errors(moe, world, match):
    with pytest.raises(ConfigError, match=match):
        validate(MOE, moe, TrainConfig(global_batch=12, micro_batch=1), world)


def test_global_batch_must_split_over_ranks():
    with pytest.raises(ConfigError, match="global-batch=10 is not a multiple"):
        gradient_accumulation(TrainConfig(global_batch=10, micro_batch=4), world_size=2)
    assert gradient_accumulation(TrainConfig(global_batch=16, micro_batch=4), world_size=2) == 2


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


def test_unset_micro_batch_is_each_ranks_share_of_the_global_batch():
    train = TrainConfig(global_batch=64)
    for world in (1, 2, 8):
        assert gradient_accumulation(train, world) == 1
        cfg = build_ds_config(DENSE, MoEConfig(), OptimConfig(), train, world)
        assert cfg["train_micro_batch_size_per_gpu"] == 64 // world
    with pytest.raises(ConfigError, match="does not split evenly over 3 ranks; set --train.micro-batch"):
        gradient_accumulation(train, 3)


@pytest.mark.parametrize("backend,zero", [("autoep", 2), ("native", 2)])
def test_closed_trainer_is_freed(backend, zero, process_group):
    """DeepSpeed's hooks keep a dropped engine (and every tensor of it) alive; close() lets it go."""
    import gc
    import weakref

    import torch

    from ds_parrots.parallel.initialize import parallelize
    from ds_parrots.training.step import train_step

    moe = MoEConfig(backend=backend)
    torch.manual_seed(0)
    trainer = parallelize(build_model(MOE), MOE, moe, OptimConfig(),
                         TrainConfig(steps=2, global_batch=2, micro_batch=2, zero_stage=zero, precision="fp32"))
    x = torch.randint(3, 20, (2, 9))
    train_step(trainer, [(x[:, :-1], x[:, 1:])])
    engine, module = weakref.ref(trainer.engine), weakref.ref(trainer.engine.module)
    trainer.close()
    del trainer
    gc.collect()
    assert engine() is None and module() is None
