"""Run capacity-slotted experts on their occupied slots only.

DeepSpeed's native (GShard) MoE hands its experts a [G, E, C, d] tensor: for each of G source ranks and E
local experts, C capacity slots, filled from slot 0 up (the gate's cumsum locations) and zero past the
last routed token. Dropless, C is the largest expert's load, so every expert computes as many rows as
the busiest one: at E = 64, top-2, 8192 tokens, the busiest load was 1.27x the mean, so a fifth of
DeepSpeed's expert matmul rows were padding (bench/bench_moe_layer.py). Here each expert runs on the rows
up to its last non-zero slot.

Exact, not an approximation: the experts are bias-free SwiGLUs, for which a zero row gives a zero output,
zero weight gradients (x = 0 and silu(0) * 0 = 0) and a zero input gradient (its up projection is 0),
so skipping the zero rows past the last occupied slot changes no output and no gradient. The slots are
found from the values (a row is occupied if any element is non-zero), so no routing metadata has to
travel with the all-to-all, whatever the expert-parallel size.

Plain PyTorch, one device; `ds_parrots.models.moe` installs it in DeepSpeed's `Experts` module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def occupied_slots(inputs: torch.Tensor) -> list[list[int]]:
    """[G, E, C, d] -> ends[e][g]: 1 + the last slot of expert e from source g holding a non-zero row
    (0 when none does)."""
    groups, experts, capacity, _ = inputs.shape
    nonzero = inputs.detach().ne(0).any(dim=-1)  # [G, E, C]
    slot = torch.arange(1, capacity + 1, device=inputs.device)
    ends = (nonzero * slot).amax(dim=-1) if capacity else nonzero.new_zeros(groups, experts, dtype=torch.long)
    return ends.t().tolist()


def run_occupied(experts: Sequence[nn.Module], inputs: torch.Tensor) -> torch.Tensor:
    """[G, E, C, d] -> [G, E, C, d]: experts[e] on the occupied slots of column e, zeros elsewhere.

    Every expert module is called, also on zero rows, so that hooks on it (ZeRO-3's parameter gathering)
    run on every rank in the same order whatever the routing.
    """
    groups, num_experts, capacity, d = inputs.shape
    if len(experts) != num_experts:
        raise ValueError(f"{len(experts)} experts for an input of {num_experts} expert columns")
    ends = occupied_slots(inputs)
    outs = []
    # unbind/split/stack each have one backward node for the whole tensor (slicing per expert would give
    # every expert a gradient of the full input).
    for expert, column, used in zip(experts, inputs.unbind(dim=1), ends):
        if groups == 1:
            rows = column[0, : used[0]]
        else:
            rows = torch.cat([column[g, :n] for g, n in enumerate(used)])
        y = expert(rows)
        outs.append(
            torch.stack([F.pad(part, (0, 0, 0, capacity - n)) for part, n in zip(y.split(used), used)])
        )
    return torch.stack(outs, dim=1)
