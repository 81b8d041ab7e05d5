"""Training-step cost of MoEs against the dense model of equal active parameters, with tokens/s and MFU.

    OMP_NUM_THREADS=2 python bench/bench_step.py [--d-model 256 --experts 8 64 ...]
    OMP_NUM_THREADS=2 python bench/bench_step.py --presets synthetic-d256-dense synthetic-d256-e8 synthetic-d256-e64
    OMP_NUM_THREADS=2 python bench/bench_step.py --presets synthetic-d512-e8 --n-layers 4 --backends autoep
    python bench/bench_step.py --presets paper-dense-d1024 paper-moe-d1024-e8 --seq-len 2048 --micro-batch 8 \
        --vocab-size 32000 --precision bf16 --backends autoep   # on a GPU: MFU against the datasheet peak

One process through our engine (ds_parrots.parallel.initialize.parallelize, the same train_step as training).

Models: without --presets they are hand-built from --d-model, --n-layers, --n-heads, --experts and --top-k.
With --presets each named preset of ds_parrots.config.PRESETS is measured instead, at this bench's --seq-len,
--micro-batch, --vocab-size and --zero-stage (a preset's own vocabulary is replaced by --vocab-size);
--d-model, --n-heads, --experts and --top-k are then unused. --n-layers, when given, overrides the preset's
layer count (12 for synthetic-*: a 12-layer d=1024 step on 2 CPU cores is slow) and the header says so.
MoE models run on each of --backends; a dense one has no MoE layer, so no backend applies to it.

Baseline: each MoE's dense twin, same dimensions with num_experts=1 and ffn_dim = top_k * the expert ffn, so
its feed-forward does the work of the k experts a token uses. It is measured once per width (per distinct dimensions) in
the same run, and each row's step time is printed as a ratio to the twin of its dimensions ("-" where no MoE
of those dimensions was asked).

tokens/s and MFU for every row: the model FLOPs that train_step counts (models/counting.flops_per_token,
PaLM's 6N + 12LHQT) per second of step, over a peak: --peak-tflops when given; else the datasheet figure of a
known GPU for --precision (throughput.device_peak_tflops); else the best of a few torch.mm of large square
matrices in that precision at this process's thread count, measured in the same run. On a CPU MFU is therefore
the fraction of the best GEMM rate this machine reaches, not of a vendor peak.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Literal, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from ds_parrots.config import ModelConfig, preset_model
from ds_parrots.errors import ConfigError  # noqa: E402

# Big enough that the fp32 GEMM rate has reached its plateau on a few CPU cores, small enough that each
# product takes well under a second there (2 * 2048^3 = 17 GFLOP).
GEMM_N = 2048
GEMM_REPEATS = 10


@dataclass
class Bench:
    presets: list[str] = field(default_factory=list)
    """Named model presets to measure (e.g. synthetic-d256-dense synthetic-d256-e8); each MoE preset also
    measures its dense twin. Empty: the hand-built models of --d-model / --experts."""
    d_model: int = 256
    """Model width of the hand-built models (the FFN size of each expert is d_model too, as in the paper)."""
    n_layers: Optional[int] = None
    """Transformer blocks. None: 4 for the hand-built models, the preset's own with --presets; given with
    --presets it overrides the preset's layer count (the header says so)."""
    n_heads: int = 4
    """Attention heads of the hand-built models."""
    experts: list[int] = field(default_factory=lambda: [8, 64])
    """Expert counts of the hand-built models."""
    top_k: int = 2
    """Experts per token of the hand-built models (presets carry their own)."""
    backends: list[Literal["autoep", "autoep-deepspeed", "native"]] = field(
        default_factory=lambda: ["autoep", "native"]
    )
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
    precision: Literal["fp32", "bf16"] = "fp32"
    """Training precision of every variant (bf16: DeepSpeed's bf16 mode, as --train.precision bf16); the
    peak that MFU divides by is taken for the same precision."""
    peak_tflops: Optional[float] = None
    """Peak TFLOP/s that MFU divides by. None (or 0): a known GPU's datasheet figure for --precision, else
    this run's measured GEMM peak in that precision."""


def models(bench: Bench) -> list[tuple[str, ModelConfig]]:
    """(label, config) of every model asked for, dense twins not included."""
    if not bench.presets:
        return [
            (
                f"MoE E={e}",
                ModelConfig(
                    vocab_size=bench.vocab_size,
                    d_model=bench.d_model,
                    n_layers=bench.n_layers or 4,
                    n_heads=bench.n_heads,
                    ffn_dim=bench.d_model,
                    num_experts=e,
                    top_k=bench.top_k,
                    max_seq_len=bench.seq_len,
                ),
            )
            for e in bench.experts
        ]
    out = []
    for name in bench.presets:
        try:
            cfg = preset_model(name, ModelConfig(vocab_size=bench.vocab_size))
        except ConfigError as e:
            raise SystemExit(f"error: --presets: {e}") from None
        # Paper presets carry a 32k vocabulary; the bench's own keeps every row's head the same size.
        cfg = dataclasses.replace(
            cfg,
            vocab_size=bench.vocab_size,
            max_seq_len=bench.seq_len,
            n_layers=bench.n_layers or cfg.n_layers,
        )
        out.append((name, cfg))
    return out


def dense_twin(cfg: ModelConfig) -> ModelConfig:
    return dataclasses.replace(cfg, num_experts=1, ffn_dim=cfg.top_k * cfg.ffn)


def measure(bench: Bench, model_cfg: ModelConfig, backend: str) -> tuple[float, float]:
    """Median seconds of a training step, and the model FLOPs train_step counts for one."""
    from deepspeed.accelerator import get_accelerator

    from ds_parrots.config import MoEConfig, OptimConfig, TrainConfig
    from ds_parrots.models import build_model
    from ds_parrots.parallel.initialize import parallelize
    from ds_parrots.training.step import train_step

    moe = (
        MoEConfig(backend="autoep", autoep_experts="deepspeed")
        if backend == "autoep-deepspeed"
        else MoEConfig(backend=backend)
    )
    train = TrainConfig(
        steps=bench.warmup + bench.steps,
        global_batch=bench.micro_batch,
        micro_batch=bench.micro_batch,
        zero_stage=bench.zero_stage,
        precision=bench.precision,
    )
    torch.manual_seed(0)
    trainer = parallelize(build_model(model_cfg), model_cfg, moe, OptimConfig(warmup_frac=0.0), train)
    x = torch.randint(3, bench.vocab_size, (bench.micro_batch, bench.seq_len + 1))
    batch = [(x[:, :-1], x[:, 1:])]
    times = []
    for i in range(bench.warmup + bench.steps):
        t = time.perf_counter()
        out = train_step(trainer, batch)
        # A no-op on the CPU; on a GPU the step is not over until its kernels are.
        get_accelerator().synchronize()
        if i >= bench.warmup:
            times.append(time.perf_counter() - t)
    trainer.close()  # else every engine measured stays in memory (d512 E=64 L=12: ~14 GB each)
    return statistics.median(times), out["flops"]


def gemm_peak_tflops(dtype: torch.dtype) -> float:
    """Best TFLOP/s of GEMM_N x GEMM_N torch.mm in `dtype` on the accelerator at torch's current thread count."""
    from deepspeed.accelerator import get_accelerator

    acc = get_accelerator()
    a = torch.randn(GEMM_N, GEMM_N, device=acc.current_device_name(), dtype=dtype)
    b = torch.randn_like(a)
    best = float("inf")
    # One extra product first: it pays for the output allocation and the library's lazy setup.
    for i in range(GEMM_REPEATS + 1):
        acc.synchronize()
        t = time.perf_counter()
        torch.mm(a, b)
        acc.synchronize()
        if i:
            best = min(best, time.perf_counter() - t)
    return 2 * GEMM_N**3 / best / 1e12


def main() -> None:
    import tyro
    from deepspeed.accelerator import get_accelerator

    warnings.filterwarnings("ignore")
    bench = tyro.cli(Bench, description=__doc__)
    if bench.peak_tflops is not None and bench.peak_tflops < 0:
        raise SystemExit(f"error: --peak-tflops={bench.peak_tflops} must be >= 0 (0 or unset: measured)")
    asked = models(bench)
    from ds_parrots.models.counting import count_params, human
    from ds_parrots.parallel.process_group import ensure_process_group, shutdown
    from ds_parrots.training.throughput import device_peak_tflops, throughput

    ensure_process_group()
    tokens = bench.micro_batch * bench.seq_len
    device = (
        torch.cuda.get_device_name() if torch.cuda.is_available() else get_accelerator().device_name().upper()
    )
    if bench.presets:
        preset_layers = sorted({preset_model(name).n_layers for name in bench.presets})
        layers = (
            f"L={bench.n_layers} (--n-layers; the presets have {'/'.join(map(str, preset_layers))})"
            if bench.n_layers
            else f"L of each preset ({'/'.join(map(str, preset_layers))})"
        )
        shape = f"presets, {layers}, vocab={bench.vocab_size}"
    else:
        shape = f"d={bench.d_model} L={bench.n_layers or 4} top-{bench.top_k} vocab={bench.vocab_size}"
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {shape}, seq={bench.seq_len} "
        f"batch={bench.micro_batch} ZeRO-{bench.zero_stage} {bench.precision} {device}"
    )
    peak = device_peak_tflops(bench.peak_tflops, bench.precision)
    if bench.peak_tflops:
        print(f"# peak {peak:.3g} TFLOP/s (--peak-tflops)")
    elif peak:
        print(f"# peak {peak:.3g} TFLOP/s (datasheet {bench.precision}, {device})")
    else:
        peak = gemm_peak_tflops(torch.bfloat16 if bench.precision == "bf16" else torch.float32)
        print(
            f"# peak {peak:.3g} TFLOP/s: measured {bench.precision} GEMM peak (best of {GEMM_REPEATS} torch.mm "
            f"{GEMM_N}x{GEMM_N}, {torch.get_num_threads()} threads); MFU here is the fraction of that rate"
        )

    # (label, config, seconds, flops per step, twin key); twins are keyed by their whole config.
    rows: list[tuple[str, ModelConfig, float, float, tuple]] = []
    twins: dict[tuple, float] = {}
    for label, cfg in asked:
        # A dense model is keyed too: it is compared with the twin of an MoE of its dimensions when one ran.
        twin = dense_twin(cfg)
        key = dataclasses.astuple(twin)
        if cfg.is_moe and key not in twins:
            t, flops = measure(bench, twin, "autoep")
            twins[key] = t
            rows.append(
                (f"dense twin d={twin.d_model} L={twin.n_layers} ffn={twin.ffn}", twin, t, flops, key)
            )
        for backend in bench.backends if cfg.is_moe else ["autoep"]:
            t, flops = measure(bench, cfg, backend)
            rows.append((f"{label} {backend}" if cfg.is_moe else label, cfg, t, flops, key))

    print(
        f"{'model':<34} {'active':>7} {'ms/step':>9} {'tokens/s':>10} {'TFLOP/s':>8} {'MFU':>7} "
        f"{'time / twin':>12}"
    )
    for label, cfg, t, flops, key in rows:
        tp = throughput(tokens, flops, t, 1, peak)
        base = twins.get(key)
        ratio = f"{t / base:.2f}x" if base else "-"
        print(
            f"{label:<34} {human(count_params(cfg).active):>7} {1000 * t:>9.1f} {tp['tokens_per_s']:>10.0f} "
            f"{tp['tflops_per_device']:>8.3g} {100 * tp['mfu']:>6.1f}% {ratio:>12}"
        )
    shutdown()


if __name__ == "__main__":
    from machine import describe  # bench/machine.py: this script's folder is on sys.path

    print(f"# machine: {describe()}", flush=True)
    main()
    print(f"# machine at the end: {describe()}")
