"""AdamW, its parameter groups and the learning-rate schedule."""

from __future__ import annotations

import torch

from ds_parrots.config import OptimConfig


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
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def continue_schedule_at(scheduler, step: int) -> None:
    """Put a fresh LambdaLR at the learning rate of step `step`, as if the run had never stopped (a run
    continued with --train.init-from starts its optimizer anew but not its schedule)."""
    scheduler.last_epoch = step - 1
    scheduler.step()
