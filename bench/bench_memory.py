"""Peak memory per rank of ZeRO-3 training at world size 2, with and without activation checkpointing.

    python bench/bench_memory.py [--d-model 256 --n-layers 4 --seq-len 512 --micro-batch 8 ...]

For the dense model (ZeRO-3) and the MoE (ZeRO-3, AutoEP, expert parallelism 2), starts 2 real CPU ranks
(deepspeed launcher, gloo, one thread each) that train through our engine. Memory is CPU RSS, which
also holds Python, torch and DeepSpeed themselves: each rank reports the growth of its resident set
from just before the model is built, its peak (VmHWM, reset at that point through
/proc/self/clear_refs) minus that baseline; the ranks run with MALLOC_MMAP_THRESHOLD_=131072 so that
freed tensors leave the RSS. Next to it: the model state each rank must hold under
ZeRO-3, 16 bytes per parameter (fp32 weights, gradients, Adam m and v) x total parameters (counting.py)
/ world size. Each setting's peak comes from its own job (a peak reached once stays in VmHWM, and
freed memory the allocator keeps stays in RSS); after its memory steps each job alternates steps with
and without checkpointing, and the time ratio is the median over both jobs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402


@dataclass
class Bench:
    d_model: int = 256
    """Model width (the FFN size of the dense model and of each expert is d_model too)."""
    n_layers: int = 4
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads."""
    experts: int = 8
    """Experts of the MoE model (top-2), split over the 2 ranks (--moe.ep-size 2)."""
    seq_len: int = 512
    """Tokens per sequence."""
    micro_batch: int = 8
    """Sequences per rank per step."""
    vocab_size: int = 1024
    """Vocabulary (synthetic-task sized: the output logits stay small next to the blocks' activations)."""
    models: list[str] = field(default_factory=lambda: ["dense", "moe"])
    """Which models to measure: dense (ZeRO-3), moe (ZeRO-3, AutoEP, ep=2)."""
    memory_steps: int = 2
    """Steps trained in each memory phase (the peak is the max over them)."""
    timed_steps: int = 4
    """Steps of each setting in the alternating timing phase; medians are reported."""
    worker: str = ""
    """Internal: run one job's rank ("dense" or "moe") and write its JSON to --out."""
    out: str = ""
    """Internal: the worker's result file."""
    checkpointing: bool = False
    """Internal: the worker's setting during its memory steps."""


def proc_status_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise KeyError(field_name)


def reset_peak_rss() -> bool:
    """Set VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker(bench: Bench) -> None:
    import torch.distributed as dist

    from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig
    from ds_parrots.models import build_model
    from ds_parrots.parallel.activation_checkpointing import apply_activation_checkpointing
    from ds_parrots.parallel.initialize import parallelize
    from ds_parrots.parallel.process_group import ensure_process_group, exit_process, shutdown
    from ds_parrots.training.step import train_step

    ensure_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    moe_model = bench.worker == "moe"
    cfg = ModelConfig(
        vocab_size=bench.vocab_size,
        d_model=bench.d_model,
        n_layers=bench.n_layers,
        n_heads=bench.n_heads,
        num_experts=bench.experts if moe_model else 1,
        top_k=2,
        max_seq_len=bench.seq_len,
    )
    moe = MoEConfig(backend="autoep", ep_size=world if moe_model else 1)
    train = TrainConfig(
        steps=100,
        global_batch=bench.micro_batch * world,
        micro_batch=bench.micro_batch,
        zero_stage=3,
        precision="fp32",
    )
    x = torch.randint(
        3,
        bench.vocab_size,
        (bench.micro_batch, bench.seq_len + 1),
        generator=torch.Generator().manual_seed(rank),
    )
    batch = [(x[:, :-1], x[:, 1:])]

    dist.barrier()
    baseline = proc_status_kib("VmRSS")
    resettable = reset_peak_rss()
    torch.manual_seed(0)
    trainer = parallelize(build_model(cfg), cfg, moe, OptimConfig(warmup_frac=0.0), train)

    def run(checkpointing: bool) -> float:
        apply_activation_checkpointing(trainer.engine.module, checkpointing)
        t = time.perf_counter()
        train_step(trainer, batch)
        return time.perf_counter() - t

    out = {"rank": rank, "baseline_kib": baseline, "hwm_resettable": resettable}
    out["after_init_kib"] = proc_status_kib("VmRSS") - baseline
    for _ in range(bench.memory_steps):
        run(bench.checkpointing)
    out["peak_kib"] = proc_status_kib("VmHWM") - baseline
    times = {True: [], False: []}
    for i in range(2 * bench.timed_steps):
        checkpointing = i % 2 == 0
        times[checkpointing].append(run(checkpointing))
    out["step_s_ckpt"] = times[True]
    out["step_s_plain"] = times[False]
    gathered = [None] * world
    dist.all_gather_object(gathered, out)
    if rank == 0:
        with open(bench.out, "w") as f:
            json.dump(gathered, f)
    shutdown()
    exit_process(0)


def launch(bench: Bench, model: str, checkpointing: bool, out_path: str) -> list[dict]:
    from ds_parrots.parallel.process_group import free_port

    args = []
    for k, v in asdict(bench).items():
        if k in ("models", "worker", "out", "checkpointing"):
            continue
        args += [f"--{k.replace('_', '-')}", str(v)]
    # A fixed mmap threshold turns off glibc's adaptive one, under which freed activation buffers stay in
    # its heap and RSS reports the allocator's high-water mark over all steps, not the live tensors (at the
    # default sizes a checkpointed run then measured no smaller than a plain one).
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=REPO,
        PYTHONWARNINGS="ignore",
        MALLOC_MMAP_THRESHOLD_=str(128 * 1024),
    )
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable,
        "-m",
        "deepspeed.launcher.runner",
        "--num_gpus",
        "2",
        "--master_port",
        str(free_port()),
        os.path.abspath(__file__),
        *args,
        "--worker",
        model,
        "--out",
        out_path,
        "--checkpointing" if checkpointing else "--no-checkpointing",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{model} job failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(out_path) as f:
        return json.load(f)


def main() -> None:
    import tyro

    warnings.filterwarnings("ignore")
    # The deepspeed launcher hands each rank a --local_rank=N of its own; the environment has it too.
    sys.argv = [a for a in sys.argv if not a.startswith("--local_rank")]
    bench = tyro.cli(Bench, description=__doc__)
    if bench.worker:
        worker(bench)
        return
    from ds_parrots.config import ModelConfig
    from ds_parrots.models.counting import count_params

    mib = 1024.0
    print(
        f"# torch {torch.__version__}, 2 ranks x 1 thread, gloo, fp32, ZeRO-3; d={bench.d_model} L={bench.n_layers} "
        f"seq={bench.seq_len} micro batch {bench.micro_batch}/rank vocab={bench.vocab_size}; MoE: "
        f"{bench.experts} experts top-2, AutoEP ep=2. Memory: per-rank RSS growth from before the model "
        "is built, max over the 2 ranks, MiB"
    )
    print(
        f"{'model':<18} {'params':>8} {'state/rank':>11} {'after init':>11} {'peak':>8} {'peak ckpt':>10} "
        f"{'ckpt/plain':>11} {'ms/step':>8} {'ms ckpt':>8} {'time ratio':>11}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for model in bench.models:
            cfg = ModelConfig(
                vocab_size=bench.vocab_size,
                d_model=bench.d_model,
                n_layers=bench.n_layers,
                n_heads=bench.n_heads,
                num_experts=bench.experts if model == "moe" else 1,
                top_k=2,
            )
            params = count_params(cfg).total
            state = 16 * params / 2 / 2**20
            jobs = {c: launch(bench, model, c, os.path.join(tmp, f"{model}-{c}.json")) for c in (False, True)}
            ranks = jobs[False] + jobs[True]
            if not all(r["hwm_resettable"] for r in ranks):
                print("# note: VmHWM could not be reset; peaks include everything since the process started")
            after = max(r["after_init_kib"] for r in ranks) / mib
            plain = max(r["peak_kib"] for r in jobs[False]) / mib
            ckpt = max(r["peak_kib"] for r in jobs[True]) / mib
            t_plain = statistics.median(t for r in ranks for t in r["step_s_plain"])
            t_ckpt = statistics.median(t for r in ranks for t in r["step_s_ckpt"])
            name = "dense ZeRO-3" if model == "dense" else f"MoE E={bench.experts} ZeRO-3 ep=2"
            print(
                f"{name:<18} {params / 1e6:>7.2f}M {state:>11.1f} {after:>11.1f} {plain:>8.1f} {ckpt:>10.1f} "
                f"{ckpt / plain:>10.2f}x {1000 * t_plain:>8.0f} {1000 * t_ckpt:>8.0f} {t_ckpt / t_plain:>10.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
