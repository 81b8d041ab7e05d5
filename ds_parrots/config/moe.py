"""How MoE layers run: backend, expert parallelism, capacity and router losses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from ds_parrots.config.checks import at_least, number
from ds_parrots.errors import ConfigError


@dataclass
class MoEConfig:
    """How MoE layers run: DeepSpeed backend, expert parallelism, auxiliary losses."""

    backend: Literal["autoep", "native"] = "autoep"
    """autoep: DeepSpeed AutoEP (dropless token-choice top-k, grouped GEMM, expert parallelism, ZeRO 0-3).
    native: deepspeed.moe.layer.MoE (GShard gate, capacity factor and token dropping, ZeRO 0-2)."""
    ep_size: int = 1
    """Expert-parallel size: each rank holds num_experts / ep_size experts. Must divide the world size."""
    aux_loss_coef: float = 0.01
    """Coefficient of the load-balancing loss E * sum_e f_e * p_e (ours: OLMoE's 0.01)."""
    z_loss_coef: float = 0.001
    """Coefficient of the router z-loss mean(logsumexp(logits)^2) (ours: OLMoE's 0.001)."""
    capacity_factor: Optional[float] = None
    """native only: expert capacity as a multiple of the even share of tokens; tokens over it are dropped.
    None: dropless (the paper's setting)."""
    eval_capacity_factor: Optional[float] = None
    """native only: capacity factor in evaluation. None: same as capacity_factor."""
    min_capacity: int = 4
    """native only: lower bound of each expert's capacity when dropping."""
    autoep_experts: Literal["grouped", "deepspeed"] = "grouped"
    """autoep only: how DeepSpeed's AutoEP layer moves tokens to its experts. grouped: a plain sort of the
    assignments where DeepSpeed has no kernel for its permutation (the CPU; ds_parrots/parallel/autoep_tokens.py),
    and its grouped-GEMM experts made safe for any gradient layout; same parameters, routing and all-to-all.
    deepspeed: DeepSpeed's layer as it comes. Both run torch._grouped_mm experts unless the DeepSpeed template
    sets expert_parallel.use_grouped_mm false."""
    native_experts: Literal["trimmed", "deepspeed"] = "trimmed"
    """native only: how DeepSpeed's capacity-slotted experts run. trimmed: each expert only on the slots
    that hold tokens (ds_parrots/parallel/trimmed_experts.py; exact, since a zero slot gives zero output and
    gradients); deepspeed: every expert on all C slots, C being the busiest expert's load when dropless."""

    def __post_init__(self) -> None:
        if self.ep_size < 1:
            raise ConfigError(f"--moe.ep-size={self.ep_size} must be >= 1")
        number("--moe.aux-loss-coef", self.aux_loss_coef, 0)
        number("--moe.z-loss-coef", self.z_loss_coef, 0)
        for flag, value in (
            ("--moe.capacity-factor", self.capacity_factor),
            ("--moe.eval-capacity-factor", self.eval_capacity_factor),
        ):
            number(flag, value, 0, low_open=True, hint=" (or omitted: dropless)")
        at_least("--moe.min-capacity", self.min_capacity, 0)
