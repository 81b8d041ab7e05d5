"""Router logits of every MoE layer, whichever backend runs it, for the auxiliary losses and expert load."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ds_parrots.models.moe import expert_load, load_balancing_loss, z_loss

# Router linear layers, by qualified name: ours (before AutoEP) and AutoEP's.
_ROUTER_LINEAR = re.compile(r"(?:^|\.)layers\.(\d+)\.mlp\.(?:gate|router\.gate)$")


# DeepSpeed native's TopKGate: it applies its `wg` weight with F.linear, so no module hook sees the
# logits; a pre-hook recomputes them from the gate's input (a [T, d] x [d, E] product, cheap).
_NATIVE_GATE = re.compile(r"(?:^|\.)layers\.(\d+)\.mlp\.moe\.deepspeed_moe\.gate$")


@dataclass
class RouterStats:
    aux_loss: torch.Tensor
    """Load-balancing loss averaged over MoE layers (differentiable)."""
    z_loss: torch.Tensor
    """Router z-loss averaged over MoE layers (differentiable)."""
    load: dict[int, torch.Tensor]
    """Layer index -> fraction of assignments per expert, for logging."""


class RouterCapture:
    """Collects the router logits of every MoE layer during forward passes (via forward hooks).

    Register it on the module that actually runs (after `deepspeed.initialize`, since AutoEP swaps
    the layers). `pop()` returns the statistics of what was captured since the last call. Only
    forwards with autograd on are captured: evaluation (under no_grad) neither feeds the next training
    step's aux losses nor piles up router logits over a long validation pass.
    """

    def __init__(self, model: nn.Module, top_k: int):
        self.top_k = top_k
        self.logits: dict[int, list[torch.Tensor]] = {}
        self.handles = []
        for name, module in model.named_modules():
            m = _ROUTER_LINEAR.search(name)
            if m and isinstance(module, nn.Linear):
                self.handles.append(module.register_forward_hook(self._hook(int(m.group(1)))))
            m = _NATIVE_GATE.search(name)
            if m and hasattr(module, "wg"):
                self.handles.append(module.register_forward_pre_hook(self._native_hook(int(m.group(1)))))

    @property
    def num_layers(self) -> int:
        return len(self.handles)

    def _hook(self, layer: int):
        def hook(_module, _inputs, output):
            if not torch.is_grad_enabled():
                return
            self.logits.setdefault(layer, []).append(output)

        return hook

    def _native_hook(self, layer: int):
        def hook(module, inputs):
            if not torch.is_grad_enabled():
                return
            logits = F.linear(inputs[0].float(), module.wg.weight.float())
            self.logits.setdefault(layer, []).append(logits)

        return hook

    def clear(self) -> None:
        self.logits.clear()

    def pop(self) -> RouterStats | None:
        if not self.logits:
            return None
        aux, zl, load = [], [], {}
        for layer, chunks in sorted(self.logits.items()):
            logits = torch.cat([c.reshape(-1, c.shape[-1]) for c in chunks])
            aux.append(load_balancing_loss(logits, self.top_k))
            zl.append(z_loss(logits))
            load[layer] = expert_load(logits.detach(), self.top_k)
        self.logits.clear()
        return RouterStats(torch.stack(aux).mean(), torch.stack(zl).mean(), load)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
