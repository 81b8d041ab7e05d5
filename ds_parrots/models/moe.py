"""The Mixtral-style MoE feed-forward: router (token-choice top-k, dropless), experts as two fused 3-D tensors,
and the auxiliary losses (load balancing, router z-loss) and expert load computed from router logits.

Plain single-device PyTorch. For training, ds_parrots.parallel swaps this layer for DeepSpeed's (AutoEP or the
native GShard layer, same parameters under DeepSpeed's names) and collects their router logits; this forward
is the reference used for evaluation, export and the parity tests.
"""

from __future__ import annotations

import torch
from torch import nn

from ds_parrots.models.grouped_experts import grouped_swiglu, loop_swiglu
from ds_parrots.models.token_permutation import from_experts, sort_by_expert, to_experts


def route(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-choice top-k: (weights [T, k] renormalized over the chosen experts, expert ids [T, k])."""
    probs = torch.softmax(logits.float(), dim=-1)
    weights, experts = torch.topk(probs, top_k, dim=-1)
    weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return weights, experts


class MixtralExperts(nn.Module):
    """E SwiGLU experts as two fused 3-D tensors (Hugging Face Mixtral layout). impl grouped: one
    torch._grouped_mm per projection (models/grouped_experts.py); loop: the per-expert reference."""

    def __init__(self, num_experts: int, d_model: int, ffn_dim: int, impl: str = "grouped"):
        super().__init__()
        if impl not in ("grouped", "loop"):
            raise ValueError(f"expert impl {impl!r}: expected 'grouped' or 'loop'")
        self.num_experts, self.ffn_dim, self.impl = num_experts, ffn_dim, impl
        self.gate_up_proj = nn.Parameter(torch.empty(num_experts, 2 * ffn_dim, d_model))
        self.down_proj = nn.Parameter(torch.empty(num_experts, d_model, ffn_dim))

    def forward(self, x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """x [N, d] sorted by expert, counts [E] rows for each expert (adding up to N); returns [N, d] in the
        same order."""
        if self.impl == "loop":
            return self.forward_loop(x, counts)
        return grouped_swiglu(x, counts, (self.gate_up_proj,), self.down_proj)

    def forward_loop(self, x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """The reference: one F.linear per expert under plain autograd (slow backward: see grouped_experts)."""
        return loop_swiglu(x, counts, (self.gate_up_proj,), self.down_proj)


class MoEFeedForward(nn.Module):
    """Mixtral-style sparse feed-forward, dropless. DeepSpeed AutoEP replaces it at initialize."""

    def __init__(
        self, d_model: int, ffn_dim: int, num_experts: int, top_k: int, expert_impl: str = "grouped"
    ):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(d_model, num_experts, bias=False)
        self.experts = MixtralExperts(num_experts, d_model, ffn_dim, expert_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, experts = route(self.gate(x), self.top_k)
        order, inverse = sort_by_expert(experts)
        counts = torch.bincount(experts.reshape(-1), minlength=self.experts.num_experts)
        out_sorted = self.experts(to_experts(x, order, inverse, self.top_k), counts)
        # The weighted sum over k in fp32, as DeepSpeed AutoEP combines; gathers only (a scatter-add would be
        # nondeterministic on a GPU and row by row on the CPU).
        per_slot = from_experts(out_sorted, order, inverse, self.top_k)
        out = (per_slot * weights.unsqueeze(-1).float()).sum(dim=1).to(x.dtype)
        return out.reshape(shape)


def load_balancing_loss(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """E * sum_e f_e * p_e (Switch / Mixtral), f_e = share of the T*k assignments that go to expert e,
    p_e = mean router probability of e. Equals 1 when routing is uniform; grows as it concentrates."""
    probs = torch.softmax(logits.float(), dim=-1)
    num_experts = probs.shape[-1]
    chosen = torch.topk(probs, top_k, dim=-1).indices
    f = (
        torch.zeros(num_experts, device=logits.device).index_add_(
            0, chosen.reshape(-1), torch.ones(chosen.numel(), device=logits.device)
        )
        / chosen.numel()
    )
    return num_experts * torch.sum(f * probs.mean(dim=0))


def z_loss(logits: torch.Tensor) -> torch.Tensor:
    """mean over tokens of logsumexp(logits)^2 (ST-MoE's router z-loss)."""
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


def expert_load(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Fraction of the top-k assignments that each expert receives, shape [E], sums to 1."""
    chosen = torch.topk(logits.float(), top_k, dim=-1).indices.reshape(-1)
    return torch.bincount(chosen, minlength=logits.shape[-1]).float() / chosen.numel()
