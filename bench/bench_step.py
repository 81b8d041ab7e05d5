"""Training-step cost of the MoE backends against the dense model of equal active parameters.

    OMP_NUM_THREADS=2 python bench/bench_step.py [--d-model 256 --experts 8 64 ...]

One process through our engine (deepspeed.initialize, the same train_step as training). The dense
twin has ffn_dim = top_k * ffn, so its feed-forward does the work of the k experts a token uses.
Prints ms/step and tokens/s of each, and each as a ratio to dense measured in the same run.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Literal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402


@dataclass
class Bench:
    d_model: int = 256
    """Model width (the FFN size of each expert is d_model too, as in the paper)."""
    n_layers: int = 4
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads."""
    experts: list[int] = field(default_factory=lambda: [8, 64])
    """Expert counts to measure."""
    top_k: int = 2
    """Experts per token."""
    backends: list[Literal["autoep", "autoep-deepspeed", "native"]] = field(
        default_factory=lambda: ["autoep", "native"])
    """MoE backends to measure. autoep-deepspeed: AutoEP with DeepSpeed's own expert compute
    (--moe.autoep-experts deepspeed) instead of our grouped SwiGLU."""
    seq_len: int = 256
    """Tokens per sequence."""
    micro_batch: int = 8
    """Sequences per step."""
    vocab_size: int = 1024
    """Vocabulary (small: the output head is not what is measured)."""
    zero_stage: int = 2
    """ZeRO stage for every variant (the native backend needs <= 2)."""
    warmup: int = 3
    """Untimed steps first."""
    steps: int = 10
    """Timed steps; the median is reported."""


def measure(bench: Bench, num_experts: int, backend: str, ffn: int) -> float:
    from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig
    from ds_parrots.engine import initialize, train_step
    from ds_parrots.model import build_model

    model_cfg = ModelConfig(vocab_size=bench.vocab_size, d_model=bench.d_model, n_layers=bench.n_layers,
                            n_heads=bench.n_heads, ffn_dim=ffn, num_experts=num_experts, top_k=bench.top_k,
                            max_seq_len=bench.seq_len)
    moe = MoEConfig(backend="autoep", autoep_experts="deepspeed") if backend == "autoep-deepspeed" else \
        MoEConfig(backend=backend)
    train = TrainConfig(steps=bench.warmup + bench.steps, global_batch=bench.micro_batch,
                        micro_batch=bench.micro_batch, zero_stage=bench.zero_stage, precision="fp32")
    torch.manual_seed(0)
    trainer = initialize(build_model(model_cfg, moe), model_cfg, moe, OptimConfig(warmup_frac=0.0), train)
    x = torch.randint(3, bench.vocab_size, (bench.micro_batch, bench.seq_len + 1))
    batch = [(x[:, :-1], x[:, 1:])]
    times = []
    for i in range(bench.warmup + bench.steps):
        t = time.perf_counter()
        train_step(trainer, batch)
        if i >= bench.warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    import tyro

    warnings.filterwarnings("ignore")
    bench = tyro.cli(Bench, description=__doc__)
    from ds_parrots.distributed import ensure_process_group, shutdown

    ensure_process_group()
    tokens = bench.micro_batch * bench.seq_len
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, d={bench.d_model} L={bench.n_layers} "
          f"seq={bench.seq_len} batch={bench.micro_batch} top-{bench.top_k} ZeRO-{bench.zero_stage} fp32 CPU")
    dense = measure(bench, 1, "autoep", bench.top_k * bench.d_model)
    rows = [("dense (ffn = k*d)", dense)]
    for e in bench.experts:
        for backend in bench.backends:
            rows.append((f"MoE E={e} {backend}", measure(bench, e, backend, bench.d_model)))
    print(f"{'model':<26} {'ms/step':>9} {'tokens/s':>10} {'time / dense':>13}")
    for name, t in rows:
        print(f"{name:<26} {1000 * t:>9.1f} {tokens / t:>10.0f} {t / dense:>13.2f}x")
    shutdown()


if __name__ == "__main__":
    main()
