"""E SwiGLU experts over rows already sorted by expert, on `torch._grouped_mm`.

One grouped GEMM per projection for all experts: torch's own op (CUTLASS on Hopper GPUs, a per-group GEMM
loop on the CPU and older GPUs), which the rest of the field runs too (torchtitan, Hugging Face Mixtral's
`grouped_mm`, DeepSpeed AutoEP's `use_grouped_mm`). It replaced a hand-written per-expert kernel
(`grouped_swiglu.py` until 2026-12-02): on this project's 2-core AMD EPYC the two tied within noise, one MoE
layer forward + backward at d = 512, 8,192 tokens, top-2, E = 8 and 64 (bench/bench_moe_layer.py, same run),
and on an Intel Xeon `torch._grouped_mm` was 0.1-0.2x faster at E = 64 (issue 18); on a GPU the loop of
6 x E small GEMMs cannot compete with one grouped kernel.

Indexing a 3-D weight per expert under plain autograd (`W[e]`) would instead give every expert a zero-filled
gradient of the whole [E, ...] tensor (O(E^2) memory traffic: 22x the dense layer at E = 64, d = 512); the
grouped GEMM's backward writes each expert's slice once.

Plain PyTorch, one device, no DeepSpeed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient: the backward of `torch._grouped_mm` rejects
    a stride-0 one (`y.sum().backward()`, an expanded ones tensor: "Invalid strides/sizes")."""

    @staticmethod
    def forward(ctx, y):
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def contiguous_grad(y: torch.Tensor) -> torch.Tensor:
    """`y`, with whatever gradient reaches it made contiguous before it flows on."""
    return _ContiguousGrad.apply(y)


def group_offsets(counts: torch.Tensor) -> torch.Tensor:
    """Rows per expert [E] -> the end row of each expert's group (int32), as torch._grouped_mm takes them."""
    return torch.cumsum(counts, dim=0, dtype=torch.int32)


def grouped_swiglu(
    x: torch.Tensor, counts: torch.Tensor, gate_up: Sequence[torch.Tensor], down: torch.Tensor
) -> torch.Tensor:
    """sum_e down_e(silu(gate_e(x)) * up_e(x)) over the rows of each expert.

    x [N, d] sorted by expert; counts [E] (a tensor on x's device: no host sync) rows for each expert,
    adding up to N (rows past the last group would come back uninitialized); gate_up: [E, 2F, d] in one
    tensor (Mixtral) or gate [E, F, d] and up [E, F, d] (AutoEP's w1, w3); down [E, d, F]. Returns [N, d]
    in the order of x. The weights are cast to x's dtype (bf16 compute over fp32 master weights).
    """
    ffn = down.shape[-1]
    if any((n * x.element_size()) % 16 for n in (x.shape[-1], ffn)):
        return loop_swiglu(x, counts, gate_up, down)
    offs = group_offsets(counts)
    if len(gate_up) == 1:
        gate, up = torch._grouped_mm(x, gate_up[0].to(x.dtype).transpose(-2, -1), offs=offs).chunk(2, dim=-1)
    else:
        gate, up = (torch._grouped_mm(x, w.to(x.dtype).transpose(-2, -1), offs=offs) for w in gate_up)
    h = F.silu(gate) * up
    return contiguous_grad(torch._grouped_mm(h, down.to(x.dtype).transpose(-2, -1), offs=offs))


def loop_swiglu(
    x: torch.Tensor, counts: torch.Tensor, gate_up: Sequence[torch.Tensor], down: torch.Tensor
) -> torch.Tensor:
    """The per-expert reference under plain autograd (same arguments as grouped_swiglu), also what runs where
    torch._grouped_mm cannot: it needs every row of its operands 16-byte aligned, which a width or expert
    FFN size that is not a multiple of 4 (fp32) or 8 (bf16) breaks. Slow backward (see the module docstring)."""
    w = torch.cat(gate_up, dim=1) if len(gate_up) > 1 else gate_up[0]
    outs = []
    for e, chunk in enumerate(torch.split(x, counts.tolist())):
        if chunk.shape[0]:
            gate, up = F.linear(chunk, w[e].to(x.dtype)).chunk(2, dim=-1)
            outs.append(F.linear(F.silu(gate) * up, down[e].to(x.dtype)))
    return torch.cat(outs) if outs else x.new_zeros(0, down.shape[1])
