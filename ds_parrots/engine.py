"""DeepSpeed setup: the config built from a ds_configs/ template plus flags, validation before any
process group exists, the optimizer and schedule, `deepspeed.initialize`, and one training step.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from ds_parrots.config import ConfigError, ModelConfig, MoEConfig, OptimConfig, TrainConfig, shipped_file
from ds_parrots.cpu_allocator import keep_freed_memory
from ds_parrots.model.counting import flops_per_token
from ds_parrots.model.moe import RouterCapture, use_grouped_swiglu


def env_world_size() -> int:
    """World size the launcher announced (deepspeed, torchrun and SLURM wrappers all set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_precision(train: TrainConfig) -> str:
    if train.precision != "auto":
        return train.precision
    return "bf16" if torch.cuda.is_available() else "fp32"


def micro_batch_size(train: TrainConfig, world_size: int) -> int:
    """--train.micro-batch, or when unset each rank's share of the global batch."""
    if train.micro_batch is not None:
        return train.micro_batch
    if train.global_batch % world_size:
        raise ConfigError(f"--train.global-batch={train.global_batch} does not split evenly over {world_size} ranks; "
                          "set --train.micro-batch (gradient accumulation makes up the rest) or change the global batch")
    return train.global_batch // world_size


def gradient_accumulation(train: TrainConfig, world_size: int) -> int:
    micro = micro_batch_size(train, world_size)
    per_pass = micro * world_size
    if train.global_batch % per_pass:
        raise ConfigError(f"--train.global-batch={train.global_batch} is not a multiple of --train.micro-batch="
                          f"{micro} x {world_size} ranks = {per_pass}; change one of them")
    return train.global_batch // per_pass


def validate(model: ModelConfig, moe: MoEConfig, train: TrainConfig, world_size: int) -> None:
    """Every invalid combination fails here, before a process group is created."""
    if model.is_moe:
        if moe.backend == "native" and train.zero_stage == 3:
            raise ConfigError("the native MoE backend does not run under ZeRO-3 (DeepSpeed refuses it); use "
                              "--moe.backend autoep or --train.zero-stage 2")
        if model.num_experts % moe.ep_size:
            raise ConfigError(f"--model.num-experts={model.num_experts} is not divisible by --moe.ep-size="
                              f"{moe.ep_size}; each rank must hold the same number of experts")
        if moe.backend == "native" and model.top_k > 2:
            raise ConfigError(f"--model.top-k={model.top_k}: the native MoE backend supports top-1 and top-2 "
                              "only; use --moe.backend autoep")
    if moe.ep_size > 1:
        if not model.is_moe:
            raise ConfigError(f"--moe.ep-size={moe.ep_size} needs an MoE model (--model.num-experts > 1)")
        if world_size % moe.ep_size:
            raise ConfigError(f"--moe.ep-size={moe.ep_size} does not divide the world size {world_size}; "
                              "launch a multiple of ep-size ranks")
    if model.is_moe and moe.backend == "autoep" and moe.capacity_factor is not None:
        raise ConfigError("--moe.capacity-factor applies to the native backend only (AutoEP is dropless); "
                          "drop the flag or use --moe.backend native")
    gradient_accumulation(train, world_size)
    read_template(train)  # a missing or broken --train.ds-config fails here, not after launch


def read_template(train: TrainConfig) -> dict:
    """The DeepSpeed JSON template: --train.ds-config, else ds_configs/zero{stage}.json."""
    if train.ds_config is None:
        return json.loads(shipped_file(f"zero{train.zero_stage}.json").read_text())
    path = Path(train.ds_config)
    if not path.is_file():
        raise ConfigError(f"--train.ds-config {path}: no such file; give a DeepSpeed JSON config, or drop the flag "
                          f"to use the shipped ds_configs/zero{train.zero_stage}.json")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--train.ds-config {path} is not valid JSON ({e}); fix it, or drop the flag to use "
                          f"the shipped ds_configs/zero{train.zero_stage}.json") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"--train.ds-config {path} holds a JSON {type(cfg).__name__}, not an object of DeepSpeed "
                          "settings")
    return cfg


def build_ds_config(model: ModelConfig, moe: MoEConfig, optim: OptimConfig, train: TrainConfig,
                    world_size: int) -> dict:
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
    if model.is_moe and moe.backend == "autoep":
        cfg["expert_parallel"] = {**cfg.get("expert_parallel", {}), "enabled": True, "autoep_size": moe.ep_size,
                                  "preset_model": "mixtral"}
        if not torch.cuda.is_available():
            # AutoEP's per-expert loop on the CPU, which initialize() then swaps for our grouped SwiGLU
            # (use_grouped_swiglu). torch._grouped_mm does run on the CPU in torch 2.13, but it is slower
            # than ours at E = 8 and its backward rejects stride-0 gradients (bench/RESULTS.md).
            cfg["expert_parallel"].setdefault("use_grouped_mm", False)
    else:
        cfg.pop("expert_parallel", None)
    return cfg


def lr_factor(step: int, total: int, optim: OptimConfig) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based): linear warmup, then linear decay."""
    warmup = int(round(optim.warmup_frac * total))
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return 1.0 - (1.0 - optim.final_lr_frac) * progress


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (and 3-D expert tensors); never norms or biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "name": "decay"},
            {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]


@dataclass
class Trainer:
    engine: object
    """The DeepSpeed engine."""
    capture: Optional[RouterCapture]
    moe: MoEConfig
    model_cfg: Optional[ModelConfig] = None
    """The model trained, for its FLOPs per token."""
    init_step: Optional[int] = None
    """Step of the --train.init-from checkpoint whose weights the model started from."""
    guard_grads: bool = False
    """Check gradients for NaN / inf before each update ourselves: no ZeRO optimizer does it (ZeRO stage 0)."""
    nonfinite_steps: list = field(default_factory=list)
    """Steps whose update was skipped for a non-finite loss or gradient (--train.on-nonfinite skip)."""
    cpu_allocator: Optional[str] = None
    """What --train.cpu-allocator keep did on a CPU run (None: not applied), for the log."""

    def close(self) -> None:
        """Release the engine so that its memory can be freed while the process goes on (benchmarks and tests
        that build several): DeepSpeed's gradient hooks keep a dropped engine, and all its tensors, alive
        until engine.destroy() unregisters them. ZeRO 0-2 only: under ZeRO-3, DeepSpeed 0.19.8's optimizer
        keeps its hooks after destroy(), so the engine stays until the process ends (measure in a fresh
        process there)."""
        if self.capture is not None:
            self.capture.remove()
        self.engine.destroy()


class SkippableAdamW(torch.optim.AdamW):
    """AdamW that leaves the weights and its moments untouched while `overflow` is set. `overflow` is how
    DeepSpeed's own optimizers report a skipped update (the engine then counts it and holds the schedule); without
    ZeRO, DeepSpeed steps our optimizer directly and nothing checks gradients, so health.guard_nonfinite_grads
    sets it."""

    overflow = False

    def step(self, closure=None):
        return None if self.overflow else super().step(closure)


def initialize(model: torch.nn.Module, model_cfg: ModelConfig, moe: MoEConfig, optim: OptimConfig,
               train: TrainConfig) -> Trainer:
    import deepspeed
    from deepspeed.accelerator import get_accelerator
    from deepspeed.moe.utils import split_params_into_different_moe_groups_for_optimizer

    allocator = None
    if train.cpu_allocator == "keep" and get_accelerator().device_name() == "cpu":
        allocator = keep_freed_memory()
    ds_config = build_ds_config(model_cfg, moe, optim, train, env_world_size())
    model.model.activation_checkpointing = train.activation_checkpointing

    def make_optimizer(groups):
        groups = list(groups)
        if model_cfg.is_moe:
            # Expert weights are sharded over the expert-parallel group and reduced separately.
            groups = split_params_into_different_moe_groups_for_optimizer(groups)
        # ZeRO wraps only the optimizer classes it knows, and checks gradients itself.
        adamw = SkippableAdamW if train.zero_stage == 0 else torch.optim.AdamW
        return adamw(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps)

    def make_scheduler(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, train.steps, optim))

    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=param_groups(model, optim.weight_decay),
                                           optimizer=make_optimizer, lr_scheduler=make_scheduler,
                                           config=ds_config)
    if model_cfg.is_moe and moe.backend == "autoep" and moe.autoep_experts == "grouped":
        use_grouped_swiglu(engine.module)
    if engine.dp_world_size == 1 and train.zero_stage == 0 and resolve_precision(train) == "fp32":
        # One data-parallel rank has nothing to average, yet DeepSpeed would still copy every gradient into
        # a flat buffer, all-reduce it over a group of one and copy it back each step (~7% of a small CPU
        # step, bench/bench_engine_overhead.py). Results are identical without it.
        engine.enable_backward_allreduce = False
    capture = RouterCapture(engine.module, model_cfg.top_k) if model_cfg.is_moe else None
    if model_cfg.is_moe and capture.num_layers != model_cfg.n_layers:
        raise RuntimeError(f"found {capture.num_layers} router layers after deepspeed.initialize, expected "
                           f"{model_cfg.n_layers}: the MoE layout no longer matches ds_parrots.model.moe")
    return Trainer(engine, capture, moe, model_cfg, guard_grads=isinstance(engine.optimizer, SkippableAdamW),
                   cpu_allocator=allocator)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the target positions that are not -100 (prompt and padding)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def train_step(trainer: Trainer, micro_batches, poison: bool = False) -> dict:
    """One optimizer step over the given micro-batches (gradient accumulation); returns scalars, and whether the
    update was skipped for non-finite values (`skipped`: by DeepSpeed's optimizer or by our gradient guard;
    `nonfinite_micro`: this rank's micro-batches whose loss was not finite). `poison`: make the loss NaN (fault
    injection, see faults.py)."""
    from ds_parrots.health import guard_nonfinite_grads

    engine, moe = trainer.engine, trainer.moe
    sums = {"loss": 0.0, "aux_loss": 0.0, "z_loss": 0.0}
    load = {}
    tokens, flops = 0, 0.0
    skipped_before, nonfinite_micro = engine.skipped_steps, []
    for j, (input_ids, targets) in enumerate(micro_batches):
        input_ids, targets = input_ids.to(engine.device), targets.to(engine.device)
        logits = engine(input_ids)
        loss = lm_loss(logits, targets)
        if poison:
            loss = loss * float("nan")
        total = loss
        if trainer.capture is not None:
            stats = trainer.capture.pop()
            total = total + moe.aux_loss_coef * stats.aux_loss + moe.z_loss_coef * stats.z_loss
            sums["aux_loss"] += stats.aux_loss.item()
            sums["z_loss"] += stats.z_loss.item()
            for layer, frac in stats.load.items():
                load[layer] = load.get(layer, 0) + frac.cpu()
        engine.backward(total)
        if trainer.capture is not None:
            # Activation checkpointing reruns the routers in backward; those logits belong to no step.
            trainer.capture.clear()
        if trainer.guard_grads and engine.is_gradient_accumulation_boundary():
            guard_nonfinite_grads(engine.module, engine.optimizer)
        engine.step()
        value = loss.item()
        if not math.isfinite(value):
            nonfinite_micro.append(j)
        sums["loss"] += value
        tokens += input_ids.numel()
        if trainer.model_cfg is not None:
            flops += input_ids.numel() * flops_per_token(trainer.model_cfg, input_ids.shape[1])
    n = len(micro_batches)
    out = {k: v / n for k, v in sums.items()}
    if trainer.capture is None:
        del out["aux_loss"], out["z_loss"]
    out["tokens"] = tokens
    out["flops"] = flops
    out["load"] = {layer: v / n for layer, v in load.items()}
    gn = engine.get_global_grad_norm()
    out["grad_norm"] = float(gn) if gn is not None and math.isfinite(float(gn)) else float("nan")
    out["lr"] = engine.get_lr()[0]
    out["skipped"] = engine.skipped_steps > skipped_before
    out["nonfinite_micro"] = nonfinite_micro
    return out
