"""DeepSpeed AutoEP's MoE layer with the token permutation of a plain sort, where DeepSpeed has no kernel for it.

Without Triton on CUDA (the CPU accelerator), AutoEP moves the routed rows through its fallback path: a copy of
every row to append a zero row, a gather into expert groups padded to 8 rows each, a zero-filled buffer that the
expert output is scattered back into, and a second zero-filled [T*k, d] buffer scattered into again before the
fp32 combine: 0.15-0.3x of a dense layer more than a plain sort (issue 18, one layer at d = 512, E = 64). Here
the layer sorts the assignments by expert once, gathers the rows, runs DeepSpeed's own experts on them, and
combines through the inverse permutation (a gather, then DeepSpeed's fp32 weighted sum over k), with gathers in
the backward too (models/token_permutation.py), as models/moe.py does.

The class is a subclass swapped in after deepspeed.initialize (`use_plain_sort`): DeepSpeed's router, experts,
all-to-all (its _AllToAllV, split plan), expert-load counters, router-logit output, parameters and
checkpoint names are untouched. Anything else DeepSpeed's forward does (CUDA with Triton, DeepEP, AutoTP folding,
scores applied before the experts, the fused combine, asynchronous split plans) runs DeepSpeed's forward.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ds_parrots.models.token_permutation import (
    from_experts,
    gather_rows,
    inverse_permutation,
    sort_by_expert,
    to_experts,
)


@functools.cache
def _plain_sort_class() -> type:
    """Built on first use: importing DeepSpeed is slow."""
    from deepspeed.module_inject import auto_ep_layer as ds
    from deepspeed.moe.ep_kernels import permute_rows_supported

    class PlainSortAutoEPMoELayer(ds.AutoEPMoELayer):
        def _plain_sort_applies(self, x: torch.Tensor) -> bool:
            folded = self.folding_group_handles is not None and self.folding_group_handles.spec.tp_size > 1
            return (
                not permute_rows_supported(x.reshape(-1, x.shape[-1]))
                and not folded
                and self.score_apply == "post"
                and self.combine_impl == "weighted_sum"
                and (
                    self.ep_size == 1 or (self.comm_backend == ds.COMM_BACKEND and not self.async_split_plan)
                )
            )

        def _forward(self, hidden_states: torch.Tensor):
            if not self._plain_sort_applies(hidden_states):
                return super()._forward(hidden_states)
            bsz, seqlen, hdim = hidden_states.shape
            x = hidden_states.reshape(-1, hdim)
            ro = ds.RouterOutput(*self.router(x, self.expert_bias))
            with torch.no_grad():
                self.tokens_per_expert.add_(ro.num_tokens_per_expert)
            # Assignments sorted by global expert id are also grouped by destination rank.
            order, inverse = sort_by_expert(ro.selected_experts)
            routed = to_experts(x, order, inverse, self.top_k)
            if self.ep_size == 1:
                expert_output = self.experts(routed, ro.num_tokens_per_expert)
            else:
                expert_output = self._experts_over_ranks(routed, ro)
            per_slot = from_experts(expert_output, order, inverse, self.top_k)
            output = (per_slot * ro.top_scores.reshape(-1, self.top_k, 1).float()).sum(dim=1)
            output = output.to(expert_output.dtype).reshape(bsz, seqlen, hdim)
            return self._finalize_output(output, x, hidden_states, hdim)

        def _experts_over_ranks(self, routed: torch.Tensor, ro) -> torch.Tensor:
            """All-to-all to the experts' ranks, there a stable sort of the arrivals (source-major) into
            expert-major order, DeepSpeed's experts, and back the same way."""
            plan = ds.compute_split_plan(
                selected_experts=ro.selected_experts,
                num_experts=self.num_experts,
                ep_size=self.ep_size,
                num_local_experts=self.num_local_experts,
                ep_group=self.ep_group,
                num_tokens_per_expert=ro.num_tokens_per_expert,
            )
            arrived = ds._AllToAllV.apply(self.ep_group, routed, plan.input_splits, plan.output_splits)
            by_source = plan.local_counts_by_source  # [ep_size, E_local]
            local_ids = torch.arange(self.num_local_experts, device=arrived.device).repeat(by_source.shape[0])
            expert_of_row = torch.repeat_interleave(local_ids, by_source.reshape(-1).to(torch.long))
            regroup = torch.argsort(expert_of_row, stable=True)
            back = inverse_permutation(regroup)
            out = self.experts(gather_rows(arrived, regroup, back), by_source.sum(dim=0))
            out = gather_rows(out, back, regroup)
            return ds._AllToAllV.apply(self.ep_group, out, plan.output_splits, plan.input_splits)

    return PlainSortAutoEPMoELayer


@functools.cache
def _safe_grouped_experts_class() -> type:
    from deepspeed.moe.ep_experts import GroupedExperts

    from ds_parrots.models.grouped_experts import contiguous_grad

    class SafeGroupedExperts(GroupedExperts):
        """DeepSpeed's experts on torch._grouped_mm, taking a gradient of any layout (the op's backward
        rejects a stride-0 one)."""

        def forward(self, x: torch.Tensor, num_tokens_per_expert: torch.Tensor) -> torch.Tensor:
            return contiguous_grad(super().forward(x, num_tokens_per_expert))

    return SafeGroupedExperts


def use_plain_sort(model: nn.Module) -> int:
    """Swap every AutoEP layer of `model` for the plain-sort subclass and its grouped-GEMM experts for the
    gradient-layout-safe subclass (class swaps: same modules, parameters and names); returns the layers
    switched."""
    from deepspeed.module_inject.auto_ep_layer import AutoEPMoELayer
    from deepspeed.moe.ep_experts import GroupedExperts

    switched = 0
    for module in model.modules():
        if type(module) is AutoEPMoELayer:
            module.__class__ = _plain_sort_class()
            switched += 1
        elif type(module) is GroupedExperts and module.use_grouped_mm and not module.use_triton_grouped_mm:
            module.__class__ = _safe_grouped_experts_class()
    return switched
