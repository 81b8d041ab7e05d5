"""The training run's flags (--train.*), one small dataclass per concern.

TrainConfig joins them by inheritance, so the flags stay flat (`--train.save-every`, not
`--train.checkpoint.save-every`) and a run directory's config.json keeps its shape, while code that needs one
concern takes that section (a CheckpointConfig is all the checkpoint code reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ds_parrots.config.checks import at_least, number, path_component, path_components
from ds_parrots.errors import ConfigError

SEED_MAX = 2**64 - 1  # torch.manual_seed's limit; numpy's SeedSequence refuses negative seeds
# A collective timeout past this overflows the nanosecond clocks it ends up in (about 292 years).
TIMEOUT_MAX = 1e9


def _at_least_one(cfg, name: str) -> None:
    value = getattr(cfg, name)
    if value is not None and value < 1:
        raise ConfigError(f"--train.{name.replace('_', '-')}={value} must be >= 1")


class _Section:
    def __post_init__(self) -> None:  # each section checks its own fields, then hands on (cooperative)
        pass


@dataclass
class LoopConfig(_Section):
    """How long and on what: steps, batch, seed, and what a non-finite step does."""

    steps: int = 1000
    """Optimizer steps to train."""
    global_batch: int = 64
    """Sequences per optimizer step over all ranks; reached by gradient accumulation when micro_batch x
    data-parallel ranks is smaller."""
    micro_batch: Optional[int] = None
    """Sequences per rank per forward/backward. None: each rank's whole share of the global batch (global
    batch / ranks, no accumulation); set it lower to fit memory, and gradient accumulation makes up the rest."""
    seed: int = 0
    """Seed of model initialization and data order."""
    on_nonfinite: Literal["stop", "skip"] = "stop"
    """A step whose loss or gradient is NaN or infinite is never applied to the weights. stop: end the run, naming
    the step, its samples and the last good checkpoint; skip: go on with the next batch, logging and counting
    the skipped steps (train/nonfinite_steps; results.json lists them)."""

    def __post_init__(self) -> None:
        for name in ("steps", "global_batch", "micro_batch"):
            _at_least_one(self, name)
        if not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"--train.seed={self.seed} must be in [0, 2**64 - 1]")
        super().__post_init__()


@dataclass
class ParallelConfig(_Section):
    """How DeepSpeed runs the step: ZeRO, precision, the JSON template, collectives, memory."""

    zero_stage: Literal[0, 1, 2, 3] = 3
    """ZeRO stage (3 shards parameters, gradients and optimizer state). The native MoE backend needs <= 2."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Training precision; auto: bf16 on GPUs, fp32 on CPU."""
    ds_config: Optional[str] = None
    """DeepSpeed JSON template to start from. None: ds_configs/zero{stage}.json shipped with the package.
    Fields our flags set are overwritten; anything else in the file is kept."""
    collective_timeout: float = 300.0
    """Seconds a rank waits on a collective before giving up on its peers: when a rank dies or hangs, the others
    stop within about this time (plus a grace period of at most a minute to name the lost ranks) instead of
    waiting forever. Raise it if a legitimate pause between collectives (a very slow checkpoint disk) is longer."""
    activation_checkpointing: bool = False
    """Recompute each transformer block's activations in the backward pass instead of keeping them
    (torch.utils.checkpoint, non-reentrant): activation memory drops to one block's plus the block inputs,
    for about one more forward pass of compute. Results are unchanged."""
    cpu_allocator: Literal["keep", "system"] = "keep"
    """CPU runs only (DeepSpeed's CPU accelerator, glibc). keep: glibc keeps freed blocks of up to 1 GiB
    for the next step instead of unmapping them, so the large per-step tensors (an MoE layer's [E, ...]
    weight gradients) are not page-faulted and zeroed again every step (ds_parrots/parallel/cpu_allocator.py);
    memory freed at the peak stays with the process. system: glibc's defaults. Either way, MALLOC_*
    variables, GLIBC_TUNABLES or a preloaded jemalloc/tcmalloc/mimalloc are left to rule."""

    def __post_init__(self) -> None:
        number(
            "--train.collective-timeout",
            self.collective_timeout,
            0,
            TIMEOUT_MAX,
            low_open=True,
            hint=" seconds",
        )
        super().__post_init__()


@dataclass
class CheckpointConfig(_Section):
    """Where the run lives, where it starts from, and how often it is saved."""

    out_dir: str = "runs"
    """Parent directory of the run directories (checkpoints, TensorBoard logs)."""
    run_name: Optional[str] = None
    """Name of this run's directory under out_dir. None: derived from the task and model."""
    resume: bool = False
    """Resume from the latest checkpoint in the run directory (an error if there is none). Needs the world
    size the checkpoint was saved at; to continue at another one, use --train.init-from."""
    init_from: Optional[str] = None
    """Continue a run at another world size, expert-parallel size, ZeRO stage or MoE backend: a consolidated
    .safetensors (ds-parrots consolidate) or a run / checkpoint directory (consolidated on the fly). Training
    goes on from its step (same learning-rate schedule and data position) in a new run directory, with AdamW's
    moments and step count restored from a ZeRO 1-3 checkpoint (see --train.init-optimizer). The model flags
    must match the checkpoint's."""
    init_optimizer: Literal["restore", "reset"] = "restore"
    """With --train.init-from: restore AdamW's state from the checkpoint's optimizer partitions, so the first
    step matches the uninterrupted run's, or reset it (moments restart from zero). A consolidated file, a
    Hugging Face folder or a ZeRO-0 checkpoint holds none: it is then reset, and the log says so."""
    save_every: int = 0
    """Save a checkpoint every N steps (and at the end). 0: only at the end."""
    keep_last: int = 0
    """Keep only the newest N complete checkpoints, deleting older ones after each save (0: keep all). The newest
    complete checkpoint is never deleted, and a new one counts only once all of its files are on disk."""
    save_every_minutes: float = 30.0
    """Also save a checkpoint at the first step boundary after this many minutes of wall time since the last
    save (or the start), so that a job killed without warning loses at most about that much work. Rank 0's
    clock decides and every rank follows. 0: only --train.save-every and the end."""
    preempt_signals: tuple[str, ...] = ("SIGTERM", "SIGUSR1")
    """Signals that mean "stop soon" (what SLURM sends before preemption or the time limit): on any of them every
    rank finishes its current step, a checkpoint of that step is saved, and the run exits with code 75
    (EX_TEMPFAIL: resume with --train.resume). Empty: no such handling."""

    def __post_init__(self) -> None:
        import signal

        for name in self.preempt_signals:
            if name not in signal.Signals.__members__ or name in ("SIGKILL", "SIGSTOP"):
                raise ConfigError(
                    f"--train.preempt-signals: {name!r} is not a signal a process can catch; use "
                    "names such as SIGTERM SIGUSR1 SIGUSR2 SIGINT"
                )
        if not (self.save_every_minutes >= 0 and self.save_every_minutes < float("inf")):
            raise ConfigError(
                f"--train.save-every-minutes={self.save_every_minutes} must be a finite number >= 0 (0: off)"
            )
        at_least("--train.save-every", self.save_every, 0)
        if self.keep_last < 0:
            raise ConfigError(f"--train.keep-last={self.keep_last} must be >= 0 (0 keeps every checkpoint)")
        if self.run_name is not None:
            path_component("--train.run-name", self.run_name, "one directory name under --train.out-dir")
        path_components("--train.out-dir", self.out_dir)
        super().__post_init__()

    def run_dir(self, default_name: str) -> Path:
        """The run directory: --train.run-name (or `default_name`, which the recipe derives) under --train.out-dir.
        A derived name is checked like a given one: a mixture's own "name" field goes into it."""
        if self.run_name is None:
            path_component(
                "the derived run name",
                default_name,
                "one directory name under --train.out-dir",
                "pass --train.run-name",
            )
        return Path(self.out_dir) / (self.run_name or default_name)


@dataclass
class LoggingConfig(_Section):
    """What the run reports while it trains."""

    log_every: int = 10
    """Log scalars to TensorBoard and the console every N steps."""
    progress: bool = True
    """Show a progress bar on rank 0 when stderr is a terminal. Without it (--train.no-progress, or output to a
    file or pipe, as in a cluster job's log) rank 0 prints one plain line every --train.log-every steps: step,
    loss, aux / z-loss, lr, gradient norm, tokens/s, MFU where known, ETA."""
    peak_tflops: Optional[float] = None
    """Peak TFLOP/s of one device, for the MFU logged as train/mfu. None: looked up from the GPU's name
    (H100, H200, A100; bf16 or fp32 by precision); on a CPU or an unlisted GPU MFU is not logged (tokens/s
    and achieved TFLOP/s per device are). 0: unknown, do not log MFU."""

    def __post_init__(self) -> None:
        _at_least_one(self, "log_every")
        number("--train.peak-tflops", self.peak_tflops, 0, hint=" (0: unknown)")
        super().__post_init__()


@dataclass
class EvalConfig(_Section):
    """Evaluation during and at the end of training."""

    eval_every: int = 0
    """Evaluate every N steps (always at the end; 0: only at the end). Synthetic tasks: score by greedy
    generation; pretrain: validation loss and perplexity."""
    eval_batch: int = 64
    """Sequences per rank per evaluation batch."""
    max_eval: Optional[int] = None
    """Score at most this many eval queries during training (None: all of them)."""

    def __post_init__(self) -> None:
        _at_least_one(self, "eval_batch")
        _at_least_one(self, "max_eval")
        at_least("--train.eval-every", self.eval_every, 0)
        super().__post_init__()


@dataclass
class DataLoadingConfig(_Section):
    """How training examples are built."""

    cache_dir: Optional[str] = None
    """Materialize the task's training examples once under this directory and memory-map them (worth it
    for the graph tasks, whose examples cost ~150 us each to generate). None: generate on the fly."""
    num_workers: int = 0
    """DataLoader worker processes that build samples (0: in the training process)."""

    def __post_init__(self) -> None:
        at_least("--train.num-workers", self.num_workers, 0)
        super().__post_init__()


# Bases in reverse: a dataclass lists its fields from the last base to the first, so --help shows the loop first.
@dataclass
class TrainConfig(DataLoadingConfig, EvalConfig, LoggingConfig, CheckpointConfig, ParallelConfig, LoopConfig):
    """The training run: batch, steps, precision, ZeRO, checkpoints, logging."""
