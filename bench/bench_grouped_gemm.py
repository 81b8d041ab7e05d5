"""The matrix products of an MoE layer alone: torch._grouped_mm over E experts against the dense GEMMs of equal
FLOPs, forward + backward, no routing, no activation, no gathers.

    OMP_NUM_THREADS=1 python bench/bench_grouped_gemm.py [--d-model 512 --tokens 8192 --experts 8 16 32 64]

What bench/bench_moe_layer.py's MoE-vs-dense ratio cannot go below with this kernel: the layer's other work
(router, sort, gathers, SwiGLU, combine) comes on top. Each of the 2 * tokens assignment rows (top-2) goes to one
of E experts uniformly; each expert's FFN is d, the dense FFN 2d (equal active parameters). Forward: [N, d] x
[E, d, 2F] then [N, F] x [E, F, d] grouped over experts; dense: [T, d] x [d, 4d] then [T, 2d] x [2d, d]. Backward
of both, with an upstream gradient of ones made contiguous. Rounds interleave dense and grouped; medians of CPU
time; no number here is asserted.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402


@dataclass
class Bench:
    d_model: int = 512
    """Model width; each expert's FFN is d_model (the paper's setting), the dense FFN 2 x d_model."""
    tokens: int = 8192
    """Tokens; top-2 gives 2 x tokens expert rows."""
    experts: list[int] = field(default_factory=lambda: [8, 16, 32, 64])
    """Expert counts E."""
    rounds: int = 7
    """Timed interleaved rounds (one untimed first)."""
    threads: int = 1
    """torch intra-op threads."""


def _grouped(x, w13, w2, offs):
    gu = torch._grouped_mm(x, w13.transpose(-2, -1), offs=offs)
    h = gu[:, : w2.shape[-1]]
    return torch._grouped_mm(h, w2.transpose(-2, -1), offs=offs)


def _dense(x, w1, w2):
    return torch.mm(torch.mm(x, w1.t())[:, : w2.shape[-1]], w2.t())


def _time(fn, *args) -> float:
    start = time.process_time()
    out = fn(*args)
    out.backward(torch.ones_like(out))
    return time.process_time() - start


def main() -> None:
    import tyro

    b = tyro.cli(Bench, description=__doc__)
    torch.set_num_threads(b.threads)
    d, rows = b.d_model, 2 * b.tokens
    gen = torch.Generator().manual_seed(0)
    x_dense = torch.randn(b.tokens, d, generator=gen).requires_grad_()
    w1 = (torch.randn(4 * d, d, generator=gen) * 0.02).requires_grad_()  # gate+up of ffn 2d, as one [4d, d]
    w2 = (torch.randn(d, 2 * d, generator=gen) * 0.02).requires_grad_()
    print(f"# torch {torch.__version__}, {b.threads} thread(s), d={d}, {b.tokens} tokens, top-2, CPU time")
    print("| E | rows per expert | dense GEMMs | grouped GEMMs | ratio |\n|---:|---:|---:|---:|---:|")
    for e in b.experts:
        counts = torch.bincount(torch.randint(0, e, (rows,), generator=gen), minlength=e)
        offs = torch.cumsum(counts, 0, dtype=torch.int32)
        x = torch.randn(rows, d, generator=gen).requires_grad_()
        w13 = (torch.randn(e, 2 * d, d, generator=gen) * 0.02).requires_grad_()
        we2 = (torch.randn(e, d, d, generator=gen) * 0.02).requires_grad_()
        dense, grouped = [], []
        for r in range(b.rounds + 1):
            td = _time(_dense, x_dense, w1, w2)
            tg = _time(_grouped, x, w13, we2, offs)
            if r:
                dense.append(td)
                grouped.append(tg)
        md, mg = statistics.median(dense), statistics.median(grouped)
        print(
            f"| {e} | {rows // e} | {md * 1e3:.0f} ms | {mg * 1e3:.0f} ms | **{mg / md:.2f}x** |", flush=True
        )


if __name__ == "__main__":
    from machine import describe  # bench/machine.py: this script's folder is on sys.path

    print(f"# machine: {describe()}", flush=True)
    main()
    print(f"# machine at the end: {describe()}")
