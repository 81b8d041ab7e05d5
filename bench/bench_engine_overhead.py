"""Engine overhead: our DeepSpeed train step against a bare PyTorch loop on the same model and batch.

    OMP_NUM_THREADS=2 python bench/bench_engine_overhead.py [--zero-stages 0 1 2 3 --steps 30]

One process, fp32, CPU. Both sides start from the same weights, see the same batch, and use the same
AdamW parameter groups, AdamW kernel (torch's fused one where it has it: parallel/optimizer.adamw_kernel, as
training picks it) and warmup/decay schedule. Bare: forward, loss, backward, clip_grad_norm_, optimizer.step,
scheduler.step, zero_grad. Ours: `training.step.train_step` on the engine from `parallel.parallelize` (what
training runs), once per ZeRO stage asked for. Steps alternate between the two so that machine noise hits
both alike; prints the median ms/step of each, the ratio ours / bare, and the largest loss difference (the two
must train the same model).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402


@dataclass
class Bench:
    d_model: int = 256
    """Model width (FFN size d_model, dense)."""
    n_layers: int = 4
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads."""
    seq_len: int = 256
    """Tokens per sequence."""
    micro_batch: int = 8
    """Sequences per step (one micro-batch: no accumulation)."""
    vocab_size: int = 1024
    """Vocabulary size."""
    zero_stages: list[int] = field(default_factory=lambda: [0, 2, 3])
    """ZeRO stages to measure our engine at (0: plain data parallel, the like-for-like comparison)."""
    warmup: int = 3
    """Untimed steps of each side first."""
    steps: int = 30
    """Timed steps of each side; medians are reported."""


def configs(bench: Bench, stage: int):
    from ds_parrots.config import ModelConfig, OptimConfig, TrainConfig

    model = ModelConfig(
        vocab_size=bench.vocab_size,
        d_model=bench.d_model,
        n_layers=bench.n_layers,
        n_heads=bench.n_heads,
        max_seq_len=bench.seq_len,
    )
    train = TrainConfig(
        steps=bench.warmup + bench.steps,
        global_batch=bench.micro_batch,
        micro_batch=bench.micro_batch,
        zero_stage=stage,
        precision="fp32",
    )
    return model, OptimConfig(), train


def bare_step_fn(bench: Bench):
    """The plain PyTorch loop, with the training run's optimizer groups, schedule and clipping."""
    from ds_parrots.models import build_model
    from ds_parrots.parallel.optimizer import adamw_kernel
    from ds_parrots.training.optim import lr_factor, param_groups
    from ds_parrots.training.step import lm_loss

    model_cfg, optim, train = configs(bench, 0)
    torch.manual_seed(0)
    model = build_model(model_cfg)
    opt = torch.optim.AdamW(
        param_groups(model, optim.weight_decay),
        lr=optim.lr,
        betas=(optim.beta1, optim.beta2),
        eps=optim.eps,
        **adamw_kernel(model.parameters()),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, train.steps, optim))
    params = list(model.parameters())

    def step(input_ids, targets) -> float:
        loss = lm_loss(model(input_ids), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, optim.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def engine_step_fn(bench: Bench, stage: int):
    from ds_parrots.config import MoEConfig
    from ds_parrots.models import build_model
    from ds_parrots.parallel.initialize import parallelize
    from ds_parrots.training.step import train_step

    model_cfg, optim, train = configs(bench, stage)
    torch.manual_seed(0)
    trainer = parallelize(build_model(model_cfg), model_cfg, MoEConfig(), optim, train)

    def step(input_ids, targets) -> float:
        return train_step(trainer, [(input_ids, targets)])["loss"]

    return step


def main() -> None:
    import tyro

    warnings.filterwarnings("ignore")
    bench = tyro.cli(Bench, description=__doc__)
    from ds_parrots.parallel.process_group import ensure_process_group, shutdown

    ensure_process_group()
    x = torch.randint(
        3,
        bench.vocab_size,
        (bench.micro_batch, bench.seq_len + 1),
        generator=torch.Generator().manual_seed(0),
    )
    batch = (x[:, :-1], x[:, 1:])
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, d={bench.d_model} L={bench.n_layers} "
        f"seq={bench.seq_len} batch={bench.micro_batch} vocab={bench.vocab_size} dense fp32 CPU, one process; "
        f"{bench.steps} timed steps each, alternating"
    )
    print(
        f"{'ZeRO':>4} {'bare ms/step':>13} {'ours ms/step':>13} {'ours / bare':>12} {'max |loss diff|':>16}"
    )
    for stage in bench.zero_stages:
        # A fresh bare loop per stage: both sides start from step 0 of the same schedule.
        sides = {"bare": bare_step_fn(bench), "ours": engine_step_fn(bench, stage)}
        times = {k: [] for k in sides}
        losses = {k: [] for k in sides}
        for i in range(bench.warmup + bench.steps):
            # Alternate which side goes first, so neither always runs right after the other's allocations.
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for k in order:
                t = time.perf_counter()
                losses[k].append(sides[k](*batch))
                if i >= bench.warmup:
                    times[k].append(time.perf_counter() - t)
        bare, ours = statistics.median(times["bare"]), statistics.median(times["ours"])
        diff = max(abs(a - b) for a, b in zip(losses["bare"], losses["ours"]))
        print(
            f"{stage:>4} {1000 * bare:>13.1f} {1000 * ours:>13.1f} {ours / bare:>11.3f}x {diff:>16.2e}",
            flush=True,
        )
        del sides
    shutdown()


if __name__ == "__main__":
    from machine import describe  # bench/machine.py: this script's folder is on sys.path

    print(f"# machine: {describe()}", flush=True)
    main()
    print(f"# machine at the end: {describe()}")
