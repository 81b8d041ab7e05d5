"""The training run's flags (--train.*).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional
from ds_parrots.errors import ConfigError


@dataclass
class TrainConfig:
    """The training run: batch, steps, precision, ZeRO, checkpoints, logging."""

    steps: int = 1000
    """Optimizer steps to train."""
    global_batch: int = 64
    """Sequences per optimizer step over all ranks; reached by gradient accumulation when micro_batch x
    data-parallel ranks is smaller."""
    micro_batch: Optional[int] = None
    """Sequences per rank per forward/backward. None: each rank's whole share of the global batch (global
    batch / ranks, no accumulation); set it lower to fit memory, and gradient accumulation makes up the rest."""
    zero_stage: Literal[0, 1, 2, 3] = 3
    """ZeRO stage (3 shards parameters, gradients and optimizer state). The native MoE backend needs <= 2."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Training precision; auto: bf16 on GPUs, fp32 on CPU."""
    ds_config: Optional[str] = None
    """DeepSpeed JSON template to start from. None: ds_configs/zero{stage}.json shipped with the package.
    Fields our flags set are overwritten; anything else in the file is kept."""
    seed: int = 0
    """Seed of model initialization and data order."""
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
    goes on from its step (same learning-rate schedule and data position) in a new run directory, with the
    optimizer state reset (AdamW moments restart from zero). The model flags must match the checkpoint's."""
    save_every: int = 0
    """Save a checkpoint every N steps (and at the end). 0: only at the end."""
    keep_last: int = 0
    """Keep only the newest N complete checkpoints, deleting older ones after each save (0: keep all). The newest
    complete checkpoint is never deleted, and a new one counts only once all of its files are on disk."""
    on_nonfinite: Literal["stop", "skip"] = "stop"
    """A step whose loss or gradient is NaN or infinite is never applied to the weights. stop: end the run, naming
    the step, its samples and the last good checkpoint; skip: go on with the next batch, logging and counting
    the skipped steps (train/nonfinite_steps; results.json lists them)."""
    collective_timeout: float = 300.0
    """Seconds a rank waits on a collective before giving up on its peers: when a rank dies or hangs, the others
    stop within about this time (plus a grace period of at most a minute to name the lost ranks) instead of
    waiting forever. Raise it if a legitimate pause between collectives (a very slow checkpoint disk) is longer."""
    log_every: int = 10
    """Log scalars to TensorBoard and the console every N steps."""
    eval_every: int = 0
    """Evaluate every N steps (always at the end; 0: only at the end). Synthetic tasks: score by greedy
    generation; pretrain: validation loss and perplexity."""
    eval_batch: int = 64
    """Sequences per rank per evaluation batch."""
    max_eval: Optional[int] = None
    """Score at most this many eval queries during training (None: all of them)."""
    cache_dir: Optional[str] = None
    """Materialize the task's training examples once under this directory and memory-map them (worth it
    for the graph tasks, whose examples cost ~150 us each to generate). None: generate on the fly."""
    num_workers: int = 0
    """DataLoader worker processes that build samples (0: in the training process)."""
    progress: bool = True
    """Show a progress bar on rank 0."""
    activation_checkpointing: bool = False
    """Recompute each transformer block's activations in the backward pass instead of keeping them
    (torch.utils.checkpoint, non-reentrant): activation memory drops to one block's plus the block inputs,
    for about one more forward pass of compute. Results are unchanged."""
    peak_tflops: Optional[float] = None
    """Peak TFLOP/s of one device, for the MFU logged as train/mfu. None: looked up from the GPU's name
    (H100, H200, A100; bf16 or fp32 by precision); on a CPU or an unlisted GPU MFU is not logged (tokens/s
    and achieved TFLOP/s per device are). 0: unknown, do not log MFU."""
    cpu_allocator: Literal["keep", "system"] = "keep"
    """CPU runs only (DeepSpeed's CPU accelerator, glibc). keep: glibc keeps freed blocks of up to 1 GiB
    for the next step instead of unmapping them, so the large per-step tensors (an MoE layer's [E, ...]
    weight gradients) are not page-faulted and zeroed again every step (ds_parrots/cpu_allocator.py);
    memory freed at the peak stays with the process. system: glibc's defaults. Either way, MALLOC_*
    variables, GLIBC_TUNABLES or a preloaded jemalloc/tcmalloc/mimalloc are left to rule."""

    def __post_init__(self) -> None:
        for name in ("steps", "global_batch", "micro_batch", "log_every", "eval_batch"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--train.{name.replace('_', '-')}={getattr(self, name)} must be >= 1")
        if self.save_every < 0 or self.eval_every < 0:
            raise ConfigError("--train.save-every and --train.eval-every must be >= 0")
        if self.keep_last < 0:
            raise ConfigError(f"--train.keep-last={self.keep_last} must be >= 0 (0 keeps every checkpoint)")
        if not self.collective_timeout > 0:
            raise ConfigError(f"--train.collective-timeout={self.collective_timeout} must be > 0 seconds")
        if self.peak_tflops is not None and self.peak_tflops < 0:
            raise ConfigError(f"--train.peak-tflops={self.peak_tflops} must be >= 0 (0: unknown)")
