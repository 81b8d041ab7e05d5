"""DeepSpeed setup: the config built from a ds_configs/ template plus flags, validation before any
process group exists, the optimizer and schedule, `deepspeed.initialize`, and one training step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional
import torch
from ds_parrots.config import MoEConfig, ModelConfig, OptimConfig, TrainConfig
from ds_parrots.parallel.cpu_allocator import keep_freed_memory
from ds_parrots.parallel.router_capture import RouterCapture
from ds_parrots.parallel.moe_backends import use_grouped_swiglu
from ds_parrots.training.optim import SkippableAdamW
from ds_parrots.parallel.ds_config import build_ds_config
from ds_parrots.parallel.ds_config import env_world_size
from ds_parrots.training.optim import lr_factor
from ds_parrots.training.optim import param_groups
from ds_parrots.parallel.ds_config import resolve_precision


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
                           f"{model_cfg.n_layers}: the MoE layout no longer matches ds_parrots.models.moe")
    return Trainer(engine, capture, moe, model_cfg, guard_grads=isinstance(engine.optimizer, SkippableAdamW),
                   cpu_allocator=allocator)
