"""`parallelize`: a plain single-device model (ds_parrots.models) -> a DeepSpeed engine, in one function.

In order: the MoE backend's layers (the native layer replaces ours; AutoEP replaces ours inside
deepspeed.initialize and reads the Mixtral attributes set here), activation checkpointing, the CPU policy, the
DeepSpeed config from its template and our flags, deepspeed.initialize with our optimizer and schedule, and the
router-logit capture that feeds the MoE losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import torch

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig
from ds_parrots.parallel import cpu_policy
from ds_parrots.parallel.activation_checkpointing import apply_activation_checkpointing
from ds_parrots.parallel.autoep_tokens import use_plain_sort
from ds_parrots.parallel.ds_config import build_ds_config, env_world_size, optimizer_unwrapped
from ds_parrots.parallel.moe_backends import install_native_layers
from ds_parrots.parallel.optimizer import SkippableAdamW, optimizer_factory, scheduler_factory
from ds_parrots.parallel.router_capture import RouterCapture
from ds_parrots.training.optim import param_groups


@dataclass
class ParallelModel:
    """A model as DeepSpeed trains it."""

    engine: object
    """The DeepSpeed engine (engine.module is the model that runs)."""
    capture: Optional[RouterCapture]
    """Router logits of every MoE layer (None for dense models)."""
    model_cfg: ModelConfig
    moe: MoEConfig
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


def mixtral_attributes(cfg: ModelConfig) -> SimpleNamespace:
    """The attributes DeepSpeed AutoEP's "mixtral" preset reads from `model.config`."""
    return SimpleNamespace(
        num_local_experts=cfg.num_experts,
        num_experts_per_tok=cfg.top_k,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.ffn,
        norm_topk_prob=True,
    )


def parallelize(
    model: torch.nn.Module, model_cfg: ModelConfig, moe: MoEConfig, optim: OptimConfig, train: TrainConfig
) -> ParallelModel:
    """Turn `model` (built by ds_parrots.models.build_model, weights already set) into a DeepSpeed engine.
    Needs the process group (ds_parrots.parallel.process_group.ensure_process_group)."""
    import deepspeed
    import torch.distributed as dist

    if model_cfg.is_moe and moe.backend == "native":
        install_native_layers(model, model_cfg, moe, dist.get_rank() if dist.is_initialized() else 0)
    if model_cfg.is_moe and moe.backend == "autoep":
        model.config = mixtral_attributes(model_cfg)
    if train.activation_checkpointing:
        apply_activation_checkpointing(model)
    ds_config = build_ds_config(model_cfg, moe, optim, train, env_world_size())
    allocator = cpu_policy.before_initialize(train) if cpu_policy.on_cpu() else None

    unwrapped = optimizer_unwrapped(train)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=param_groups(model, optim.weight_decay),
        optimizer=optimizer_factory(model, model_cfg, optim, train, unwrapped),
        lr_scheduler=scheduler_factory(optim, train),
        config=ds_config,
    )
    if model_cfg.is_moe and moe.backend == "autoep" and moe.autoep_experts == "grouped":
        use_plain_sort(engine.module)
    if unwrapped:
        drop_engine_clipping(engine)
    if engine.dp_world_size == 1 and unwrapped:
        # One data-parallel rank has nothing to average, yet DeepSpeed would still copy every gradient into
        # a flat buffer, all-reduce it over a group of one and copy it back each step (~7% of a small CPU
        # step, bench/bench_engine_overhead.py). Results are identical without it.
        engine.enable_backward_allreduce = False
    capture = RouterCapture(engine.module, model_cfg.top_k) if model_cfg.is_moe else None
    if model_cfg.is_moe and capture.num_layers != model_cfg.n_layers:
        raise RuntimeError(
            f"found {capture.num_layers} router layers after deepspeed.initialize, expected "
            f"{model_cfg.n_layers}: the MoE layout no longer matches ds_parrots.models.moe"
        )
    return ParallelModel(engine, capture, model_cfg, moe, cpu_allocator=allocator)


def drop_engine_clipping(engine) -> None:
    """Without ZeRO, in fp32, DeepSpeed 0.19.8's engine clips before optimizer.step with
    engine.clip_fp32_gradients (runtime.utils.clip_grad_norm_: a Python loop of one norm per parameter, the
    all-reduce, then one multiply per parameter). Our SkippableAdamW computes that norm once, to skip a
    non-finite update, and clips with it, so the engine's pass goes; the config keeps gradient_clipping, which
    DeepSpeed reads nowhere else on this path."""
    if not isinstance(engine.optimizer, SkippableAdamW):
        raise RuntimeError(
            f"DeepSpeed wrapped our AdamW in {type(engine.optimizer).__name__} without ZeRO in fp32: "
            "parallel/ds_config.optimizer_unwrapped no longer matches DeepSpeed's choice of optimizer wrapper"
        )
    if not callable(getattr(engine, "clip_fp32_gradients", None)):
        raise RuntimeError(
            "this DeepSpeed's engine has no clip_fp32_gradients: its fp32 clipping moved, and ours "
            "(parallel/optimizer.SkippableAdamW) would clip a second time; check _take_model_step"
        )
    engine.clip_fp32_gradients = lambda: None
