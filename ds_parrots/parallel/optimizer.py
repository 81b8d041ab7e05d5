"""The optimizer and schedule as DeepSpeed builds them: AdamW over our parameter groups, with expert
weights in groups of their own (they are reduced over the expert-data-parallel group), and the
learning-rate schedule as a LambdaLR that DeepSpeed steps.

AdamW runs torch's fused kernel wherever torch has one for the parameters' device and dtype (torch 2.13: CPU,
CUDA and others, any floating dtype), else its multi-tensor (foreach) loop: left unset, torch picks its
single-tensor Python loop on the CPU, a dozen elementwise passes per parameter. DeepSpeed's ZeRO 1-3 and bf16
optimizers wrap it as they do any torch.optim.AdamW (ZeRO checks the class, not its arguments) and step it
on their flat fp32 partitions. A checkpoint's param groups carry their kernel (torch's load_state_dict
restores "fused" and "foreach" with the other hyperparameters), so a run saved with the single-tensor loop
resumes with it, bit for bit, and only new runs take the fused kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ds_parrots.config import ModelConfig, OptimConfig, TrainConfig
from ds_parrots.training.optim import lr_factor


def adamw_kernel(params: Iterable[torch.Tensor]) -> dict:
    """AdamW's keyword choosing its kernel: {"fused": True} when torch has a fused AdamW for every parameter's
    device and dtype, else {"foreach": True}."""
    try:
        from torch.optim.optimizer import _device_dtype_check_for_fused  # torch >= 2.2

        for p in params:
            _device_dtype_check_for_fused(p)
    except (ImportError, RuntimeError):
        return {"foreach": True}
    return {"fused": True}


def global_grad_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all `grads` as DeepSpeed's fp32 path computes it (deepspeed.runtime.utils.clip_grad_norm_,
    0.19.8, without model parallelism): each gradient's norm, the square root of their sum of squares, then
    the mean over the data-parallel group of each rank's norm. Expert gradients differ between ranks, hence the
    mean; and the one all-reduce carries an inf or NaN of any rank to every rank, so all of them agree to skip.
    Per-gradient norms in one multi-tensor op where DeepSpeed loops over parameters in Python; the same
    arithmetic, so on the CPU the same bits."""
    import deepspeed.comm as dist
    from deepspeed.accelerator import get_accelerator
    from deepspeed.utils import groups

    if grads:
        total = torch.stack(torch._foreach_norm(grads, 2)).pow(2.0).sum().float().pow(1.0 / 2.0)
    else:
        total = torch.zeros((), device=get_accelerator().current_device_name())
    group = groups._get_data_parallel_group()
    world = dist.get_world_size(group=group)
    total = total * 1.0 / float(world)
    if world > 1:
        dist.all_reduce(total, group=group)
    return total


class SkippableAdamW(torch.optim.AdamW):
    """AdamW as DeepSpeed steps it without a ZeRO or bf16 optimizer around it (ZeRO-0, fp32), where no DeepSpeed
    code checks gradients: `step` computes the global gradient norm once, skips the update when it is not
    finite (leaving the weights and moments untouched) and sets `overflow`, the attribute DeepSpeed's engine reads
    to count a skipped step and hold the schedule, else clips to `max_norm` and updates. DeepSpeed's own fp32
    clipping, a second norm over the same gradients, is switched off by parallelize (initialize.py); the norm is
    left in `_global_grad_norm`, which the engine hands on as get_global_grad_norm().

    Reading the norm's finiteness is a host sync, one per step: the engine decides on the host, after
    optimizer.step, whether to count the step and advance the schedule. On the CPU it costs nothing."""

    def __init__(self, params, *, norm_params: Iterable[torch.Tensor], max_norm: float, **adamw):
        super().__init__(params, **adamw)
        self.norm_params = list(norm_params)
        """Every parameter whose gradient counts, in the module's order (DeepSpeed's: the norm sums in it)."""
        self.max_norm = float(max_norm)
        """Clip the global gradient norm to this; 0: no clipping (non-finite updates are still skipped)."""
        self.overflow = False
        self._global_grad_norm = None

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p.grad for p in self.norm_params if p.grad is not None]
        norm = global_grad_norm(grads)
        self._global_grad_norm = norm
        self.overflow = not bool(torch.isfinite(norm))
        if self.overflow:
            return None
        if self.max_norm > 0 and grads:
            # DeepSpeed's clip_grad_norm_ ops, so the same bits: min(1, max_norm / (norm + 1e-6)), every gradient
            # multiplied by it (by 1.0 when under the limit).
            coef = torch.tensor([self.max_norm], device=norm.device) / (norm + 1e-6)
            coef = torch.min(torch.tensor([1.0], device=coef.device), coef)
            torch._foreach_mul_(grads, coef.reshape(()).to(grads[0].device))
        return super().step(closure)


def optimizer_factory(
    model: torch.nn.Module, model_cfg: ModelConfig, optim: OptimConfig, train: TrainConfig, unwrapped: bool
) -> Callable:
    """What deepspeed.initialize calls with the parameter groups to build the optimizer. `unwrapped`: DeepSpeed
    steps it directly (ds_config.optimizer_unwrapped), so it checks and clips gradients itself; `model` is the
    module deepspeed.initialize trains (AutoEP has replaced its experts by the time this is called)."""

    def make_optimizer(groups):
        from deepspeed.moe.utils import split_params_into_different_moe_groups_for_optimizer

        groups = list(groups)
        if model_cfg.is_moe:
            # Expert weights are sharded over the expert-parallel group and reduced separately.
            groups = split_params_into_different_moe_groups_for_optimizer(groups)
        hyper = dict(lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps)
        hyper.update(adamw_kernel(p for g in groups for p in g["params"]))
        if unwrapped:
            return SkippableAdamW(groups, norm_params=model.parameters(), max_norm=optim.grad_clip, **hyper)
        # ZeRO wraps only the optimizer classes it knows (torch.optim.AdamW itself, not a subclass), and checks
        # gradients itself.
        return torch.optim.AdamW(groups, **hyper)

    return make_optimizer


def scheduler_factory(optim: OptimConfig, train: TrainConfig) -> Callable:
    def make_scheduler(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, train.steps, optim))

    return make_scheduler
