"""Every numeric field of every config section refuses non-finite and out-of-range values in one ConfigError
naming the flag, and takes the edges of its range. The field lists are read from the dataclasses, so a field
added later without a check fails here."""

import dataclasses
import math

import pytest

from ds_parrots.config import DataConfig, ModelConfig, MoEConfig, OptimConfig, TrainConfig
from ds_parrots.errors import ConfigError

SECTIONS = {
    "model": ModelConfig,
    "moe": MoEConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
    "data": DataConfig,
}


def fields_typed(*types):
    return [
        pytest.param(section, cls, f.name, id=f"{section}.{f.name}")
        for section, cls in SECTIONS.items()
        for f in dataclasses.fields(cls)
        if f.type in types
    ]


def flag(section, name):
    return f"--{section}.{name.replace('_', '-')}"


def refused(cls, section, name, value) -> str:
    with pytest.raises(ConfigError) as e:
        cls(**{name: value})
    message = str(e.value)
    assert message.startswith(f"{flag(section, name)}="), message
    assert "\n" not in message
    return message


@pytest.mark.parametrize("section,cls,name", fields_typed("float", "Optional[float]"))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_float_flag_refuses_non_finite_values(section, cls, name, value):
    assert "finite number" in refused(cls, section, name, value)


@pytest.mark.parametrize("section,cls,name", fields_typed("float", "Optional[float]"))
def test_every_float_flag_refuses_negative_values(section, cls, name):
    refused(cls, section, name, -1.0)


@pytest.mark.parametrize("section,cls,name", fields_typed("int", "Optional[int]"))
def test_every_int_flag_refuses_negative_values(section, cls, name):
    refused(cls, section, name, -1)


@pytest.mark.parametrize(
    "cls,section,name,value,rule",
    [
        (OptimConfig, "optim", "lr", 0.0, "> 0"),
        (OptimConfig, "optim", "eps", 0.0, "> 0"),
        (OptimConfig, "optim", "beta1", 1.0, "in [0, 1)"),
        (OptimConfig, "optim", "beta2", 2.0, "in [0, 1)"),
        (OptimConfig, "optim", "warmup_frac", 1.5, "in [0, 1]"),
        (OptimConfig, "optim", "final_lr_frac", 1.01, "in [0, 1]"),
        (MoEConfig, "moe", "capacity_factor", 0.0, "> 0"),
        (MoEConfig, "moe", "eval_capacity_factor", 0.0, "> 0"),
        (ModelConfig, "model", "norm_eps", 0.0, "> 0"),
        (ModelConfig, "model", "init_std", 0.0, "> 0"),
        (ModelConfig, "model", "rope_theta", 0.0, "> 0"),
        (TrainConfig, "train", "collective_timeout", 0.0, "in (0, 1e+09]"),
        (TrainConfig, "train", "collective_timeout", 1e10, "in (0, 1e+09]"),
        (TrainConfig, "train", "seed", 2**64, "[0, 2**64 - 1]"),
        (TrainConfig, "train", "max_eval", 0, ">= 1"),
    ],
)
def test_out_of_range_values_are_refused_with_the_range(cls, section, name, value, rule):
    assert rule in refused(cls, section, name, value)


@pytest.mark.parametrize(
    "cls,values",
    [
        (
            OptimConfig,
            dict(lr=1e-12, weight_decay=0.0, beta1=0.0, beta2=0.999999, warmup_frac=1.0, grad_clip=0.0),
        ),
        (OptimConfig, dict(warmup_frac=0.0, final_lr_frac=1.0)),
        (MoEConfig, dict(aux_loss_coef=0.0, z_loss_coef=0.0, capacity_factor=1e-3, min_capacity=0)),
        (
            TrainConfig,
            dict(collective_timeout=1e9, peak_tflops=0.0, seed=2**64 - 1, num_workers=0, max_eval=1),
        ),
        (ModelConfig, dict(norm_eps=1e-12, init_std=1e-6, rope_theta=1e6)),
    ],
)
def test_the_edges_of_each_range_are_accepted(cls, values):
    cfg = cls(**values)
    assert all(getattr(cfg, k) == v for k, v in values.items())


def test_a_flag_the_parser_reads_as_nan_is_refused_before_anything_runs():
    from ds_parrots.cli.train import parse

    with pytest.raises(ConfigError, match=r"^--optim\.lr=nan must be a finite number > 0$"):
        parse(["phonebook", "--preset", "tiny-dense", "--optim.lr", "nan"])
