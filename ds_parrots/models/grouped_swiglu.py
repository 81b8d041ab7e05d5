"""E SwiGLU experts over rows already sorted by expert: forward and backward in one autograd Function.

Why not plain autograd over a loop of `F.linear(chunk, W[e])`: indexing a parameter (`W[e]`) gives
every expert its own SelectBackward, which materializes a zero-filled gradient of the whole [E, ...]
tensor and adds it up, so the backward moves E times the expert weights (O(E^2) memory traffic: 22x the
dense layer at E = 64, d = 512). Here the backward writes each expert's weight gradient straight into
its slice of one [E, ...] tensor, and every matmul writes into a slice of a preallocated buffer (no
torch.cat of per-expert outputs). `torch._grouped_mm` runs on the CPU in torch 2.13 but is slower than
this (3-4x the dense layer at E = 8) and its backward fails on stride-0 gradients.

Plain PyTorch, one device, no DeepSpeed: the same kernel serves our MoE module and, swapped in by
`ds_parrots.models.moe.use_grouped_swiglu`, DeepSpeed AutoEP's expert compute (separate w1 / w3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _spans(counts: Sequence[int]) -> list[tuple[int, int, int]]:
    """(expert, first row, end row) of every expert that received rows."""
    spans, start = [], 0
    for e, n in enumerate(counts):
        if n:
            spans.append((e, start, start + n))
        start += n
    return spans


class _GroupedSwiGLU(torch.autograd.Function):
    """Expert by expert, each step on rows still in cache: the [rows, 2F] gate/up product is the only
    activation kept for the backward; h and every gradient temporary live for one expert at a time."""

    @staticmethod
    def forward(ctx, x, counts, down, *gate_up):
        # gate_up: tensors [E, F_i, d] whose concatenation along dim 1 is [gate; up] ([E, 2F, d]).
        ffn = down.shape[-1]
        spans = _spans(counts)
        total = sum(counts)
        gu = x.new_empty(total, 2 * ffn)
        y = x.new_empty(x.shape[0], down.shape[1])
        y[total:] = 0  # alignment padding past the counted rows
        for e, a, b in spans:
            col = 0
            for w in gate_up:
                torch.mm(x[a:b], w[e].t(), out=gu[a:b, col : col + w.shape[1]])
                col += w.shape[1]
            h = F.silu(gu[a:b, :ffn]).mul_(gu[a:b, ffn:])
            torch.mm(h, down[e].t(), out=y[a:b])
        # The parameters themselves are saved (not views): ZeRO-3 re-gathers them before the backward.
        ctx.save_for_backward(x, gu, down, *gate_up)
        ctx.spans, ctx.empty = spans, [e for e, n in enumerate(counts) if n == 0]
        return y

    @staticmethod
    def backward(ctx, dy):
        x, gu, down, *gate_up = ctx.saved_tensors
        spans, ffn = ctx.spans, down.shape[-1]
        dy = dy.contiguous()

        def weight_grad(w):
            grad = torch.empty_like(w)
            if ctx.empty:  # experts without rows get a zero gradient, the others are overwritten below
                grad[ctx.empty] = 0
            return grad

        d_down = weight_grad(down)
        d_gate_up = [weight_grad(w) for w in gate_up]
        dx = None
        if ctx.needs_input_grad[0]:
            dx = torch.empty_like(x)
            dx[gu.shape[0] :] = 0
        for e, a, b in spans:
            g, u = gu[a:b, :ffn], gu[a:b, ffn:]
            silu_g = F.silu(g)
            h = silu_g * u  # recomputed: cheaper than keeping [N, F] alive through the backward
            torch.mm(dy[a:b].t(), h, out=d_down[e])
            dh = torch.mm(dy[a:b], down[e])
            dgu = torch.empty_like(gu[a:b])
            torch.mul(dh, silu_g, out=dgu[:, ffn:])
            dgu[:, :ffn] = torch.ops.aten.silu_backward(dh.mul_(u), g)
            col = 0
            for w, dw in zip(gate_up, d_gate_up):
                part = dgu[:, col : col + w.shape[1]]
                torch.mm(part.t(), x[a:b], out=dw[e])
                if dx is not None:
                    if col == 0:
                        torch.mm(part, w[e], out=dx[a:b])
                    else:
                        dx[a:b].addmm_(part, w[e])
                col += w.shape[1]
        return (dx, None, d_down, *d_gate_up)


def grouped_swiglu(
    x: torch.Tensor, counts: Sequence[int], gate_up: Sequence[torch.Tensor], down: torch.Tensor
) -> torch.Tensor:
    """sum_e down_e(silu(gate_e(x)) * up_e(x)) over the rows of each expert.

    x [N, d] sorted by expert, counts[e] rows for expert e (rows past sum(counts), DeepSpeed's alignment
    padding, give zeros); gate_up: [E, 2F, d] in one tensor (Mixtral) or as gate [E, F, d] and up
    [E, F, d] (AutoEP's w1, w3); down [E, d, F]. Returns [N, d] in the order of x.
    """
    counts = [int(c) for c in counts]
    if sum(counts) > x.shape[0]:
        raise ValueError(f"counts add up to {sum(counts)} rows, x has {x.shape[0]}")
    return _GroupedSwiGLU.apply(x, counts, down.to(x.dtype), *(w.to(x.dtype) for w in gate_up))
