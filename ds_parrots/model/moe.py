"""The MoE feed-forward: router, experts, auxiliary losses, and how DeepSpeed's MoE layers plug in.

Two backends share one parameter layout where they can:
- autoep: our `MoEFeedForward` holds Mixtral's tensors (`gate` [E, d], `experts.gate_up_proj`
  [E, 2F, d], `experts.down_proj` [E, d, F]). `deepspeed.initialize` swaps it for DeepSpeed's
  AutoEP layer (same routing math: softmax, top-k, renormalized weights); our own forward is the
  single-device reference used for evaluation, export and the parity tests.
- native: `deepspeed.moe.layer.MoE` with our SwiGLU as the expert (GShard gate, capacity factor); its
  experts run on their occupied capacity slots only (`trimmed_experts`).

Auxiliary losses are computed the same way for both, from the router logits, which a forward hook
on the router's linear layer collects (`RouterCapture`): AutoEP computes none itself, and the
native layer's own GShard loss has no z-loss term.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ds_parrots.config import ModelConfig, MoEConfig
from ds_parrots.model.grouped_swiglu import grouped_swiglu
from ds_parrots.model.transformer import SwiGLU
from ds_parrots.model.trimmed_experts import run_occupied


def route(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-choice top-k: (weights [T, k] renormalized over the chosen experts, expert ids [T, k])."""
    probs = torch.softmax(logits.float(), dim=-1)
    weights, experts = torch.topk(probs, top_k, dim=-1)
    weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return weights, experts


class MixtralExperts(nn.Module):
    """E SwiGLU experts as two fused 3-D tensors (Hugging Face Mixtral layout)."""

    def __init__(self, num_experts: int, d_model: int, ffn_dim: int, impl: str = "grouped"):
        super().__init__()
        if impl not in ("grouped", "loop"):
            raise ValueError(f"expert impl {impl!r}: expected 'grouped' or 'loop'")
        self.num_experts, self.ffn_dim, self.impl = num_experts, ffn_dim, impl
        self.gate_up_proj = nn.Parameter(torch.empty(num_experts, 2 * ffn_dim, d_model))
        self.down_proj = nn.Parameter(torch.empty(num_experts, d_model, ffn_dim))

    def forward(self, x: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """x [N, d] sorted by expert, counts[e] rows for expert e; returns [N, d] in the same order."""
        if self.impl == "loop":
            return self.forward_loop(x, counts)
        return grouped_swiglu(x, counts, (self.gate_up_proj,), self.down_proj)

    def forward_loop(self, x: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """The reference: one F.linear per expert under plain autograd (slow backward, see grouped_swiglu)."""
        outs = []
        for e, chunk in enumerate(torch.split(x, counts)):
            if chunk.shape[0] == 0:
                continue
            gate, up = F.linear(chunk, self.gate_up_proj[e]).chunk(2, dim=-1)
            outs.append(F.linear(F.silu(gate) * up, self.down_proj[e]))
        return torch.cat(outs) if outs else x.new_zeros(x.shape)


class MoEFeedForward(nn.Module):
    """Mixtral-style sparse feed-forward, dropless. DeepSpeed AutoEP replaces it at initialize."""

    def __init__(self, d_model: int, ffn_dim: int, num_experts: int, top_k: int, expert_impl: str = "grouped"):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(d_model, num_experts, bias=False)
        self.experts = MixtralExperts(num_experts, d_model, ffn_dim, expert_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, experts = route(self.gate(x), self.top_k)
        flat = experts.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.experts.num_experts).tolist()
        token = order // self.top_k
        out_sorted = self.experts(x.index_select(0, token), counts)
        out_sorted = out_sorted * weights.reshape(-1)[order].unsqueeze(-1).to(out_sorted.dtype)
        out = torch.zeros_like(x).index_add_(0, token, out_sorted.to(x.dtype))
        return out.reshape(shape)


class NativeMoEFeedForward(nn.Module):
    """deepspeed.moe.layer.MoE around our SwiGLU expert; returns only the hidden states."""

    def __init__(self, model: ModelConfig, moe: MoEConfig):
        super().__init__()
        from deepspeed.moe.layer import MoE

        dropless = moe.capacity_factor is None
        cf = 1.0 if dropless else moe.capacity_factor
        ecf = moe.eval_capacity_factor if moe.eval_capacity_factor is not None else cf
        self.moe = MoE(hidden_size=model.d_model, expert=SwiGLU(model.d_model, model.ffn),
                       num_experts=model.num_experts, ep_size=moe.ep_size, k=model.top_k, capacity_factor=cf,
                       eval_capacity_factor=ecf, min_capacity=moe.min_capacity, drop_tokens=not dropless,
                       # Deterministic top-2 (DeepSpeed samples the 2nd expert by default): same routing
                       # as the autoep backend and as our aux-loss bookkeeping.
                       top2_2nd_expert_sampling=False, use_rts=not dropless)
        if moe.native_experts == "trimmed":
            self.moe.deepspeed_moe.experts.__class__ = _trimmed_experts_class()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _l_aux, _counts = self.moe(x)
        return out


@functools.cache
def _trimmed_experts_class() -> type:
    """DeepSpeed's native Experts running each expert on its occupied capacity slots only: same modules,
    parameters and state-dict names, one forward changed (built on first use: importing DeepSpeed is slow)."""
    from deepspeed.moe.experts import Experts

    class TrimmedExperts(Experts):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return run_occupied(self.deepspeed_experts, inputs)

    return TrimmedExperts


@functools.cache
def _grouped_swiglu_experts_class() -> type:
    """DeepSpeed's GroupedExperts with our kernel as forward (built on first use: importing DeepSpeed is slow)."""
    from deepspeed.moe.ep_experts import GroupedExperts

    class GroupedSwiGLUExperts(GroupedExperts):
        def forward(self, x: torch.Tensor, num_tokens_per_expert: torch.Tensor) -> torch.Tensor:
            return grouped_swiglu(x, num_tokens_per_expert.tolist(), (self.w1, self.w3), self.w2)

    return GroupedSwiGLUExperts


def use_grouped_swiglu(model: nn.Module) -> int:
    """Run the experts of every DeepSpeed AutoEP layer in `model` with our grouped SwiGLU where DeepSpeed
    would run its per-expert loop (use_grouped_mm off, as on the CPU); returns how many were switched.

    DeepSpeed's loop indexes its [E, ...] weights per expert under autograd, and the backward of each index
    is a zero-filled gradient of the whole tensor: O(E^2) memory traffic (see grouped_swiglu). The swap
    changes only the class of the experts module (a subclass whose forward calls our kernel on the same
    w1 / w2 / w3): parameters, state-dict names, routing, permutation and all-to-all stay DeepSpeed's.
    """
    from deepspeed.moe.ep_experts import GroupedExperts

    switched = 0
    for module in model.modules():
        if (type(module) is GroupedExperts and module.activation == "swiglu" and not module.use_grouped_mm
                and not module.use_triton_grouped_mm):
            module.__class__ = _grouped_swiglu_experts_class()
            switched += 1
    return switched


def backend_state_dict(state: dict[str, torch.Tensor], model: ModelConfig, moe: MoEConfig,
                       rank: int) -> dict[str, torch.Tensor]:
    """A state dict in the single-device (Mixtral) layout, renamed for the model this backend builds on
    `rank`: the native layer holds only its expert-parallel rank's experts, as separate SwiGLUs (DeepSpeed
    places rank r's experts at [(r % ep) * local, ...), the E + D layout); AutoEP slices the full tensors
    itself at initialize."""
    if not model.is_moe or moe.backend != "native":
        return state
    local = model.num_experts // moe.ep_size
    first = (rank % moe.ep_size) * local
    ffn = model.ffn
    out = {}
    for name, value in state.items():
        m = re.match(r"^(model\.layers\.\d+\.mlp)\.(gate\.weight|experts\.gate_up_proj|experts\.down_proj)$", name)
        if m is None:
            out[name] = value
            continue
        prefix, what = m.groups()
        base = f"{prefix}.moe.deepspeed_moe"
        if what == "gate.weight":
            out[f"{base}.gate.wg.weight"] = value
            continue
        for j in range(local):
            expert = f"{base}.experts.deepspeed_experts.{j}"
            if what == "experts.gate_up_proj":
                out[f"{expert}.gate_proj.weight"] = value[first + j, :ffn]
                out[f"{expert}.up_proj.weight"] = value[first + j, ffn:]
            else:
                out[f"{expert}.down_proj.weight"] = value[first + j]
    return out


def feed_forward_factory(model: ModelConfig, moe: MoEConfig):
    """A zero-argument constructor of one block's feed-forward for this config."""
    if not model.is_moe:
        return lambda: SwiGLU(model.d_model, model.ffn)
    if moe.backend == "native":
        return lambda: NativeMoEFeedForward(model, moe)
    return lambda: MoEFeedForward(model.d_model, model.ffn, model.num_experts, model.top_k)


# ---------------------------------------------------------------------------------------------
# Auxiliary losses and expert load, from router logits.
# ---------------------------------------------------------------------------------------------

def load_balancing_loss(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """E * sum_e f_e * p_e (Switch / Mixtral), f_e = share of the T*k assignments that go to expert e,
    p_e = mean router probability of e. Equals 1 when routing is uniform; grows as it concentrates."""
    probs = torch.softmax(logits.float(), dim=-1)
    num_experts = probs.shape[-1]
    chosen = torch.topk(probs, top_k, dim=-1).indices
    f = torch.zeros(num_experts, device=logits.device).index_add_(
        0, chosen.reshape(-1), torch.ones(chosen.numel(), device=logits.device)) / chosen.numel()
    return num_experts * torch.sum(f * probs.mean(dim=0))


def z_loss(logits: torch.Tensor) -> torch.Tensor:
    """mean over tokens of logsumexp(logits)^2 (ST-MoE's router z-loss)."""
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


def expert_load(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Fraction of the top-k assignments that each expert receives, shape [E], sums to 1."""
    chosen = torch.topk(logits.float(), top_k, dim=-1).indices.reshape(-1)
    return torch.bincount(chosen, minlength=logits.shape[-1]).float() / chosen.numel()


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
