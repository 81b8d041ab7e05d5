"""The optimizer and schedule as DeepSpeed builds them: AdamW over our parameter groups, with expert
weights in groups of their own (they are reduced over the expert-data-parallel group), and the
learning-rate schedule as a LambdaLR that DeepSpeed steps."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ds_parrots.config import ModelConfig, OptimConfig, TrainConfig
from ds_parrots.training.optim import lr_factor


class SkippableAdamW(torch.optim.AdamW):
    """AdamW that leaves the weights and its moments untouched while `overflow` is set. `overflow` is how
    DeepSpeed's own optimizers report a skipped update (the engine then counts it and holds the schedule); without
    ZeRO, DeepSpeed steps our optimizer directly and nothing checks gradients, so health.guard_nonfinite_grads
    sets it."""

    overflow = False

    def step(self, closure=None):
        return None if self.overflow else super().step(closure)


def optimizer_factory(model_cfg: ModelConfig, optim: OptimConfig, train: TrainConfig) -> Callable:
    """What deepspeed.initialize calls with the parameter groups to build the optimizer."""

    def make_optimizer(groups):
        from deepspeed.moe.utils import split_params_into_different_moe_groups_for_optimizer

        groups = list(groups)
        if model_cfg.is_moe:
            # Expert weights are sharded over the expert-parallel group and reduced separately.
            groups = split_params_into_different_moe_groups_for_optimizer(groups)
        # ZeRO wraps only the optimizer classes it knows, and checks gradients itself.
        adamw = SkippableAdamW if train.zero_stage == 0 else torch.optim.AdamW
        return adamw(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps)

    return make_optimizer


def scheduler_factory(optim: OptimConfig, train: TrainConfig) -> Callable:
    def make_scheduler(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, train.steps, optim))

    return make_scheduler
