"""The DeepSpeed config built from a ds_configs/ template plus flags, and every check of the parallel
layout that can run before a process group exists.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig, shipped_file
from ds_parrots.errors import ConfigError


def env_world_size() -> int:
    """World size the launcher announced (deepspeed, torchrun and SLURM wrappers all set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_precision(train: TrainConfig) -> str:
    if train.precision != "auto":
        return train.precision
    return "bf16" if torch.cuda.is_available() else "fp32"


def optimizer_unwrapped(train: TrainConfig) -> bool:
    """DeepSpeed steps our torch optimizer directly (ZeRO-0 in fp32): no ZeRO or bf16 optimizer wraps it to check
    and clip gradients, so ours does (parallel/optimizer.SkippableAdamW)."""
    return train.zero_stage == 0 and resolve_precision(train) == "fp32"


def micro_batch_size(train: TrainConfig, world_size: int) -> int:
    """--train.micro-batch, or when unset each rank's share of the global batch."""
    if train.micro_batch is not None:
        return train.micro_batch
    if train.global_batch % world_size:
        raise ConfigError(
            f"--train.global-batch={train.global_batch} does not split evenly over {world_size} ranks; "
            "set --train.micro-batch (gradient accumulation makes up the rest) or change the global batch"
        )
    return train.global_batch // world_size


def gradient_accumulation(train: TrainConfig, world_size: int) -> int:
    micro = micro_batch_size(train, world_size)
    per_pass = micro * world_size
    if train.global_batch % per_pass:
        raise ConfigError(
            f"--train.global-batch={train.global_batch} is not a multiple of --train.micro-batch="
            f"{micro} x {world_size} ranks = {per_pass}; change one of them"
        )
    return train.global_batch // per_pass


def validate(model: ModelConfig, moe: MoEConfig, train: TrainConfig, world_size: int) -> None:
    """Every invalid combination fails here, before a process group is created."""
    if model.is_moe:
        if moe.backend == "native" and train.zero_stage == 3:
            raise ConfigError(
                "the native MoE backend does not run under ZeRO-3 (DeepSpeed refuses it); use "
                "--moe.backend autoep or --train.zero-stage 2"
            )
        if model.num_experts % moe.ep_size:
            raise ConfigError(
                f"--model.num-experts={model.num_experts} is not divisible by --moe.ep-size="
                f"{moe.ep_size}; each rank must hold the same number of experts"
            )
        if moe.backend == "native" and model.top_k > 2:
            raise ConfigError(
                f"--model.top-k={model.top_k}: the native MoE backend supports top-1 and top-2 "
                "only; use --moe.backend autoep"
            )
    if moe.ep_size > 1:
        if not model.is_moe:
            raise ConfigError(f"--moe.ep-size={moe.ep_size} needs an MoE model (--model.num-experts > 1)")
        if world_size % moe.ep_size:
            raise ConfigError(
                f"--moe.ep-size={moe.ep_size} does not divide the world size {world_size}; "
                "launch a multiple of ep-size ranks"
            )
    for flag, value in (
        ("--moe.capacity-factor", moe.capacity_factor),
        ("--moe.eval-capacity-factor", moe.eval_capacity_factor),
    ):
        if model.is_moe and moe.backend == "autoep" and value is not None:
            raise ConfigError(
                f"{flag} applies to the native backend only (AutoEP is dropless); drop the flag or use "
                "--moe.backend native"
            )
    gradient_accumulation(train, world_size)
    read_template(train)  # a missing or broken --train.ds-config fails here, not after launch


def read_template(train: TrainConfig) -> dict:
    """The DeepSpeed JSON template: --train.ds-config, else ds_configs/zero{stage}.json."""
    if train.ds_config is None:
        return json.loads(shipped_file(f"zero{train.zero_stage}.json").read_text())
    path = Path(train.ds_config)
    if not path.is_file():
        raise ConfigError(
            f"--train.ds-config {path}: no such file; give a DeepSpeed JSON config, or drop the flag "
            f"to use the shipped ds_configs/zero{train.zero_stage}.json"
        )
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"--train.ds-config {path} is not valid JSON ({e}); fix it, or drop the flag to use "
            f"the shipped ds_configs/zero{train.zero_stage}.json"
        ) from None
    if not isinstance(cfg, dict):
        raise ConfigError(
            f"--train.ds-config {path} holds a JSON {type(cfg).__name__}, not an object of DeepSpeed settings"
        )
    return cfg


def build_ds_config(
    model: ModelConfig, moe: MoEConfig, optim: OptimConfig, train: TrainConfig, world_size: int
) -> dict:
    """The DeepSpeed config: the template with our flags written over the fields they own."""
    cfg = read_template(train)
    cfg["train_micro_batch_size_per_gpu"] = micro_batch_size(train, world_size)
    cfg["gradient_accumulation_steps"] = gradient_accumulation(train, world_size)
    cfg["train_batch_size"] = train.global_batch
    cfg["gradient_clipping"] = optim.grad_clip
    cfg.setdefault("zero_optimization", {})["stage"] = train.zero_stage
    cfg["bf16"] = {**cfg.get("bf16", {}), "enabled": resolve_precision(train) == "bf16"}
    cfg.pop("fp16", None)
    cfg.setdefault("steps_per_print", 10**9)
    if (
        world_size == 1
        and train.zero_stage in (1, 2)
        and not model.is_moe
        and resolve_precision(train) == "fp32"
    ):
        # One rank: ZeRO-1/2's reduce-scatter over a group of one still flattens each gradient bucket, reduces it
        # and copies it back; its plain in-place all-reduce of the bucket is the same arithmetic (x / 1, a sum of
        # one) with one gradient-sized copy fewer per step, and the checkpoint does not record which ran
        # (tests/integration/parallel/test_optimizer_parity.py). DeepSpeed 0.19.8 refuses it with MoE layers
        # (stage_1_and_2: "Reduce Scatter in ZeRO Stage 2 must be set to True for MoE"), at ZeRO 1 as at 2.
        cfg["zero_optimization"].setdefault("reduce_scatter", False)
    if model.is_moe and moe.backend == "autoep":
        cfg["expert_parallel"] = {
            **cfg.get("expert_parallel", {}),
            "enabled": True,
            "autoep_size": moe.ep_size,
            "preset_model": "mixtral",
        }
    else:
        cfg.pop("expert_parallel", None)
    return cfg
