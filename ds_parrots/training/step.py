"""The loss and one optimizer step.
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from ds_parrots.models.counting import flops_per_token
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ds_parrots.parallel.initialize import Trainer


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the target positions that are not -100 (prompt and padding)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def train_step(trainer: Trainer, micro_batches, poison: bool = False) -> dict:
    """One optimizer step over the given micro-batches (gradient accumulation); returns scalars, and whether the
    update was skipped for non-finite values (`skipped`: by DeepSpeed's optimizer or by our gradient guard;
    `nonfinite_micro`: this rank's micro-batches whose loss was not finite). `poison`: make the loss NaN (fault
    injection, see faults.py)."""
    from ds_parrots.parallel.health import guard_nonfinite_grads

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
