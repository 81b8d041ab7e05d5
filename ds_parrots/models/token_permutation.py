"""Moving token rows into expert order and back with gathers only, forward and backward.

`x.index_select(0, idx)` differentiates into a scatter-add (index_add_), which PyTorch's CPU kernel runs row by
row; when `idx` is a permutation, or k copies of each row, the inverse permutation turns that backward into a
gather too (a gather through the inverse, then a sum over the k copies). DeepSpeed AutoEP's Triton row
permutation does the same on CUDA; measured on the CPU in bench/bench_moe_layer.py (variants grouped, autoep).
"""

from __future__ import annotations

import torch


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src, index, inverse, copies):
        ctx.save_for_backward(inverse)
        ctx.copies = copies
        return src.index_select(0, index)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        grad = grad.contiguous().index_select(0, inverse)
        if ctx.copies > 1:
            grad = grad.reshape(-1, ctx.copies, grad.shape[-1]).sum(dim=1)
        return grad, None, None, None


def inverse_permutation(order: torch.Tensor) -> torch.Tensor:
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return inverse


def gather_rows(
    src: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor, copies: int = 1
) -> torch.Tensor:
    """src[index] ([len(index), d]) where index holds every row of src exactly `copies` times: row j of the
    result is src row index[j], and inverse[r * copies + c] is the position of the c-th copy of row r (for
    copies == 1, the inverse permutation of index). Its backward is a gather as well."""
    return _GatherRows.apply(src, index, inverse, copies)


def sort_by_expert(experts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k expert ids [T, k] -> (order, inverse): order lists the T*k assignments grouped by expert (stable,
    so by token within an expert), inverse[t * k + j] is where assignment (t, j) landed."""
    order = torch.argsort(experts.reshape(-1), stable=True)
    return order, inverse_permutation(order)


def to_experts(x: torch.Tensor, order: torch.Tensor, inverse: torch.Tensor, top_k: int) -> torch.Tensor:
    """Token rows x [T, d] -> one row per assignment in expert order [T*k, d]."""
    return gather_rows(x, order // top_k, inverse, top_k)


def from_experts(rows: torch.Tensor, order: torch.Tensor, inverse: torch.Tensor, top_k: int) -> torch.Tensor:
    """Expert-ordered rows [T*k, d] -> [T, k, d] in token order."""
    return gather_rows(rows, inverse, order).reshape(-1, top_k, rows.shape[-1])
