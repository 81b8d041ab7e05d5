"""One MoE feed-forward layer, forward + backward, against the dense SwiGLU of equal active parameters.

    python bench/bench_moe_layer.py                      # d=512, 8192 tokens, top-2, E = 8 16 32 64
    python bench/bench_moe_layer.py --threads 2 --rounds 7
    python bench/bench_moe_layer.py --experts 64 --profile-dir runs/bench_moe_profile

The dense baseline (1.00x) is SwiGLU with ffn = top_k * d: the work of the k experts a token uses (each
expert's ffn is d, as in the paper). Variants:
  loop          our MoEFeedForward with the per-expert loop under plain autograd (the reference)
  grouped       our MoEFeedForward: a plain sort, torch._grouped_mm experts (ds_parrots/models/grouped_experts.py)
  autoep        DeepSpeed AutoEP's layer as training runs it (autoep_size 1): its experts on torch._grouped_mm
                (DeepSpeed's use_grouped_mm), its token permutation replaced by a plain sort
                (ds_parrots/parallel/autoep_tokens.py, --moe.autoep-experts grouped)
  autoep-deepspeed  AutoEP's layer as deepspeed.initialize builds it, use_grouped_mm on (--moe.autoep-experts
                deepspeed): DeepSpeed's own token permutation
  autoep-loop   the same with use_grouped_mm off: DeepSpeed's per-expert loop
  native        deepspeed.moe.layer.MoE (ep_size 1, dropless) as our NativeMoEFeedForward builds it, each
                expert on its occupied capacity slots (--moe.native-experts trimmed, the default)
  native-full   the same with DeepSpeed's own Experts: every expert on all C slots (C = the busiest
                expert's load)
The DeepSpeed layers come out of our `parallelize` on a one-layer model (ZeRO-0, so no gradient
hooks run inside the timed backward). All variants of one E share the same weights, so they route alike.
Rounds are interleaved (dense, then every variant, repeated); the median of each is reported, and each
ratio uses the dense median of the same E. Both clocks are reported: wall time, and this process's CPU
time, which on a CPU shared with other jobs leaves out the time the process waited for a core (with
--threads 1 it is the work done; with more threads it also counts their spin-waits). No number here is
asserted: timing on a shared CPU is noisy.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Literal, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

Variant = Literal["loop", "grouped", "autoep", "autoep-deepspeed", "autoep-loop", "native", "native-full"]


@dataclass
class Bench:
    d_model: int = 512
    """Model width; each expert's FFN size is d_model too (the paper's setting), the dense FFN top_k * d."""
    tokens: int = 8192
    """Tokens per forward (batch x sequence), fed as [tokens / seq_len, seq_len, d]."""
    seq_len: int = 1024
    """Sequence length of the input shape (the layers see every token alike; only the shape changes)."""
    top_k: int = 2
    """Experts per token."""
    experts: list[int] = field(default_factory=lambda: [8, 16, 32, 64])
    """Expert counts E to measure."""
    variants: list[Variant] = field(
        default_factory=lambda: [
            "loop",
            "autoep-loop",
            "autoep-deepspeed",
            "native",
            "native-full",
            "grouped",
            "autoep",
        ]
    )
    """MoE layers to time (see the list above); the dense baseline always runs."""
    rounds: int = 5
    """Timed interleaved rounds; medians are reported."""
    warmup: int = 1
    """Untimed rounds first (allocator, first-call costs)."""
    threads: int = 1
    """torch intra-op threads. 1 by default: on a CPU shared with other jobs, 2 threads make every small
    per-expert GEMM wait on a descheduled peer thread (measured 4x slower at E = 64), which measures the
    neighbours rather than the layer."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Parameter and activation dtype."""
    seed: int = 0
    """Seed of the weights and inputs."""
    allocator: Literal["keep", "system"] = "keep"
    """glibc malloc for the whole process. keep: as training runs on the CPU (--train.cpu-allocator keep,
    ds_parrots/parallel/cpu_allocator.py: freed blocks are kept for reuse); system: glibc's defaults, which unmap
    blocks over 32 MB at free, so the MoE layers' [E, ...] gradients are page-faulted anew every step."""
    profile_dir: Optional[str] = None
    """If set, also write a torch.profiler table (self CPU time, top ops) of one fwd+bwd of every layer
    at every E into this folder, as <variant>_E<E>.txt."""


def _engine_layer(
    bench: Bench,
    num_experts: int,
    backend: str,
    autoep_experts: str,
    grouped_mm: Optional[bool],
    native_experts: str = "trimmed",
):
    """The MoE layer that training runs: block 0's feed-forward of a one-layer model after our parallelize."""
    import json
    import tempfile

    from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig, shipped_file
    from ds_parrots.models import build_model
    from ds_parrots.parallel.initialize import parallelize

    cfg = ModelConfig(
        vocab_size=64,
        d_model=bench.d_model,
        n_layers=1,
        n_heads=8,
        num_experts=num_experts,
        top_k=bench.top_k,
        max_seq_len=bench.seq_len,
    )
    moe = MoEConfig(backend=backend, autoep_experts=autoep_experts, native_experts=native_experts)
    ds_config = None
    if grouped_mm is not None:
        template = json.loads(shipped_file("zero0.json").read_text())
        template["expert_parallel"] = {"use_grouped_mm": grouped_mm}
        ds_config = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(template, ds_config)
        ds_config.close()
    train = TrainConfig(
        steps=1,
        global_batch=1,
        micro_batch=1,
        zero_stage=0,
        precision=bench.precision,
        cpu_allocator=bench.allocator,
        ds_config=ds_config.name if ds_config else None,
    )
    torch.manual_seed(bench.seed)
    trainer = parallelize(build_model(cfg), cfg, moe, OptimConfig(), train)
    if ds_config:
        os.unlink(ds_config.name)
    trainer.capture.remove()  # router logits for the aux losses: not part of the layer
    return trainer.engine.module.model.layers[0].mlp


def build(bench: Bench, num_experts: int, variant: str, dtype: torch.dtype) -> torch.nn.Module:
    from ds_parrots.models.moe import MoEFeedForward
    from ds_parrots.models.transformer import SwiGLU

    d, k = bench.d_model, bench.top_k
    if variant == "dense":
        torch.manual_seed(bench.seed)
        layer = SwiGLU(d, k * d)
    elif variant in ("loop", "grouped"):
        # The same weights the engine variants start from: the one-layer model's block 0 (seeded alike).
        layer = MoEFeedForward(d, d, num_experts, k, expert_impl=variant)
        layer.load_state_dict(_reference_weights(bench, num_experts))
    elif variant in ("native", "native-full"):
        return _engine_layer(
            bench,
            num_experts,
            "native",
            "deepspeed",
            None,
            "trimmed" if variant == "native" else "deepspeed",
        )
    else:
        return _engine_layer(
            bench,
            num_experts,
            "autoep",
            "grouped" if variant == "autoep" else "deepspeed",
            variant != "autoep-loop",
        )
    return layer.to(dtype)


def _reference_weights(bench: Bench, num_experts: int) -> dict:
    from ds_parrots.config import ModelConfig
    from ds_parrots.models import build_model

    cfg = ModelConfig(
        vocab_size=64,
        d_model=bench.d_model,
        n_layers=1,
        n_heads=8,
        num_experts=num_experts,
        top_k=bench.top_k,
        max_seq_len=bench.seq_len,
    )
    torch.manual_seed(bench.seed)
    return build_model(cfg).model.layers[0].mlp.state_dict()


def fwd_bwd(layer: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one forward + backward."""
    for p in layer.parameters():
        p.grad = None
    x.grad = None
    wall, cpu = time.perf_counter(), time.process_time()
    layer(x).backward(grad)
    return time.perf_counter() - wall, time.process_time() - cpu


def profile_table(layer: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fwd_bwd(layer, x, grad)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)


def main() -> None:
    import tyro

    warnings.filterwarnings("ignore")
    bench = tyro.cli(Bench, description=__doc__)
    torch.set_num_threads(bench.threads)
    if bench.tokens % bench.seq_len:
        raise SystemExit(f"--tokens={bench.tokens} is not a multiple of --seq-len={bench.seq_len}")
    from ds_parrots.parallel.process_group import ensure_process_group, shutdown

    ensure_process_group()
    allocator = "system"
    if bench.allocator == "keep":
        from ds_parrots.parallel.cpu_allocator import keep_freed_memory

        allocator = f"keep: {keep_freed_memory()}"
    dtype = torch.bfloat16 if bench.precision == "bf16" else torch.float32
    names = ["dense", *bench.variants]
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), d={bench.d_model}, "
        f"{bench.tokens} tokens, top-{bench.top_k}, expert ffn = d, dense ffn = {bench.top_k}d, {bench.precision}, "
        f"median of {bench.rounds} interleaved rounds, allocator {allocator}"
    )
    table = {}
    for e in bench.experts:
        layers = {name: build(bench, e, name, dtype) for name in names}
        gen = torch.Generator().manual_seed(bench.seed + 1)
        shape = (bench.tokens // bench.seq_len, bench.seq_len, bench.d_model)
        x = torch.randn(shape, generator=gen).to(dtype).requires_grad_()
        grad = torch.randn(shape, generator=gen).to(dtype)
        times = {name: [] for name in names}
        for r in range(bench.warmup + bench.rounds):
            for name in names:
                t = fwd_bwd(layers[name], x, grad)
                if r >= bench.warmup:
                    times[name].append(t)
        # Medians of wall and of CPU time, each over the rounds.
        med = {name: [statistics.median(t[i] for t in ts) for i in (0, 1)] for name, ts in times.items()}
        table[e] = med
        print(
            f"E={e:<3} "
            + "  ".join(
                f"{n} {1000 * med[n][1]:.0f} ms cpu {med[n][1] / med['dense'][1]:.2f}x "
                f"(wall {med[n][0] / med['dense'][0]:.2f}x)"
                for n in names
            ),
            flush=True,
        )
        if bench.profile_dir:
            os.makedirs(bench.profile_dir, exist_ok=True)
            for name in names:
                with open(os.path.join(bench.profile_dir, f"{name}_E{e}.txt"), "w") as f:
                    f.write(profile_table(layers[name], x, grad))
        del layers
    for clock, i in (("CPU time", 1), ("wall time", 0)):
        print(f"\n{clock}: ms, and ratio to dense\n| E | dense | " + " | ".join(bench.variants) + " |")
        print("|---:|---:|" + "---:|" * len(bench.variants))
        for e, med in table.items():
            cells = [
                f"{1000 * med[n][i]:.0f} ms, **{med[n][i] / med['dense'][i]:.2f}x**" for n in bench.variants
            ]
            print(f"| {e} | {1000 * med['dense'][i]:.0f} ms | " + " | ".join(cells) + " |")
    shutdown()


if __name__ == "__main__":
    from machine import describe  # bench/machine.py: this script's folder is on sys.path

    print(f"# machine: {describe()}", flush=True)
    main()
    print(f"# machine at the end: {describe()}")
