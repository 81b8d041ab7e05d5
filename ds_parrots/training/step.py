"""The loss and one optimizer step (gradient accumulation over micro-batches).

Step metrics stay on the device: nothing here reads a tensor on the host, so a GPU's launch queue is never
drained for bookkeeping. The Trainer reads them once per log step (and checks one flag per step). The optimizer
step inside engine.step reads one flag of its own, whether the global gradient norm is finite, before it updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from ds_parrots.models.counting import flops_per_token
from ds_parrots.parallel.initialize import ParallelModel


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy (mean, or "sum") over the target positions that are not -100 (prompt and padding), in
    fp32 whatever the logits' precision."""
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=-100,
        reduction=reduction,
    )


@dataclass
class StepOutput:
    """One optimizer step's results on this rank. Tensors are on the device, detached."""

    losses: torch.Tensor
    """[micro-batches] the LM loss of each micro-batch (float32)."""
    metrics: torch.Tensor
    """[3] float64: mean LM loss, aux loss, z-loss over the micro-batches (0 for dense models), summed in the
    order of the micro-batches as Python floats would be."""
    load: dict = field(default_factory=dict)
    """MoE layer index -> [E] mean fraction of assignments per expert."""
    tokens: int = 0
    flops: float = 0.0
    skipped: bool = False
    """The update was skipped for non-finite values (by DeepSpeed's optimizer, or ours without ZeRO)."""
    lr: float = 0.0
    grad_norm: Optional[object] = None
    """The global gradient norm, DeepSpeed's (ZeRO, bf16) or our AdamW's (ZeRO-0 in fp32): a tensor or float;
    read it on the host only when logging."""
    moe: bool = False
    """The model has routers (aux_loss and z_loss mean something)."""

    def host(self) -> dict:
        """The step's scalars as Python numbers, for scripts and tests: a device sync."""
        keys = ("loss", "aux_loss", "z_loss") if self.moe else ("loss",)
        gn = float(self.grad_norm) if self.grad_norm is not None else float("nan")
        return {
            **dict(zip(keys, self.metrics.tolist())),
            "grad_norm": gn,
            "lr": self.lr,
            "tokens": self.tokens,
            "flops": self.flops,
            "skipped": self.skipped,
        }

    def __getitem__(self, key: str):
        return self.host()[key]

    def nonfinite_micro(self) -> list[int]:
        """This rank's micro-batches whose loss was not finite (a host read: only after a non-finite step)."""
        return torch.nonzero(~torch.isfinite(self.losses)).flatten().tolist()


def train_step(model: ParallelModel, micro_batches) -> StepOutput:
    """One optimizer step over the given (input_ids, targets) micro-batches."""
    engine, moe = model.engine, model.moe
    sums = torch.zeros(3, dtype=torch.float64, device=engine.device)
    losses, load = [], {}
    tokens, flops = 0, 0.0
    skipped_before = engine.skipped_steps
    for input_ids, targets in micro_batches:
        input_ids, targets = input_ids.to(engine.device), targets.to(engine.device)
        loss = lm_loss(engine(input_ids), targets)
        total = loss
        if model.capture is not None:
            stats = model.capture.pop()
            total = total + moe.aux_loss_coef * stats.aux_loss + moe.z_loss_coef * stats.z_loss
            sums[1:] += torch.stack([stats.aux_loss.detach(), stats.z_loss.detach()]).double()
            for layer, frac in stats.load.items():
                load[layer] = load.get(layer, 0) + frac
        engine.backward(total)
        if model.capture is not None:
            # Activation checkpointing reruns the routers in backward; those logits belong to no step.
            model.capture.clear()
        engine.step()
        losses.append(loss.detach())
        sums[0] += loss.detach().double()
        tokens += input_ids.numel()
        flops += input_ids.numel() * flops_per_token(model.model_cfg, input_ids.shape[1])
    n = len(micro_batches)
    return StepOutput(
        losses=torch.stack(losses),
        metrics=sums / n,
        load={k: v / n for k, v in load.items()},
        tokens=tokens,
        flops=flops,
        skipped=engine.skipped_steps > skipped_before,
        lr=engine.get_lr()[0],
        grad_norm=engine.get_global_grad_norm(),
        moe=model.capture is not None,
    )
