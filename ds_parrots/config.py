"""Configuration dataclasses and named presets.

Every field's docstring is its `--help` text. Values the paper does not publish are ours and are
marked so; they stay fields with defaults, never constants buried in code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal, Optional


class ConfigError(Exception):
    """A user-facing configuration mistake; the CLI prints its message on one line and exits 2."""


class RunAborted(Exception):
    """A run stopped by a fault it detected (a lost rank, a non-finite loss, a failed checkpoint write): the CLI
    prints the message, which names what happened and how to continue, on one line and exits 1. `report`: false on
    ranks that stop for the same reason as a rank that reports it, so the message is printed once."""

    def __init__(self, message: str, report: bool = True):
        super().__init__(message)
        self.report = report


def shipped_file(name: str) -> Path:
    """A file under ds_configs/: inside the installed package, or at the repository root when run from
    a checkout that was not installed."""
    try:
        packaged = resources.files("ds_parrots.ds_configs").joinpath(*name.split("/"))
        if packaged.is_file() or packaged.is_dir():
            return Path(str(packaged))
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "ds_configs" / name

@dataclass
class ModelConfig:
    """Mistral-style decoder; the feed-forward is dense (num_experts=1) or a Mixtral-style MoE."""

    vocab_size: int = 32000
    """Vocabulary size. Synthetic tasks set it from their tokenizer; pre-training from the tokenizer file."""
    d_model: int = 256
    """Model width d (hidden size)."""
    n_layers: int = 12
    """Number of transformer blocks L (paper: 20 for pre-training; a review reports 12 for the synthetic tasks)."""
    n_heads: int = 4
    """Attention (query) heads; d_model must be divisible by it."""
    n_kv_heads: Optional[int] = None
    """Key/value heads for grouped-query attention; must divide n_heads. None: same as n_heads (no grouping)."""
    ffn_dim: Optional[int] = None
    """Intermediate size of the SwiGLU feed-forward (of each expert). None: d_model, as in the paper and OLMoE."""
    num_experts: int = 1
    """Experts per MoE layer E. 1 means a dense feed-forward (paper: E in 8, 16, 32, 64)."""
    top_k: int = 2
    """Experts each token is routed to (paper: 2)."""
    max_seq_len: int = 2048
    """Longest sequence the rotary tables cover. Synthetic tasks set it from their longest example."""
    rope_theta: float = 10000.0
    """Rotary position embedding base (ours: Mistral's 1e4 at this context length)."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    tie_embeddings: bool = False
    """Share the input embedding with the output head (default off, as in Mistral)."""
    init_std: float = 0.02
    """Standard deviation of the normal initialization of every weight matrix (ours)."""

    def __post_init__(self) -> None:
        # ffn_dim / n_kv_heads stay None when unset (resolved by the properties below), so that a flag
        # like --model.d-model still moves the FFN size with it.
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "num_experts",
                     "top_k", "max_seq_len"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--model.{name.replace('_', '-')}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_heads:
            raise ConfigError(f"--model.d-model={self.d_model} is not divisible by --model.n-heads={self.n_heads}; "
                              "choose heads that divide the width")
        if (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"head size {self.d_model // self.n_heads} (d-model / n-heads) must be even for rotary "
                              "embeddings; change --model.n-heads")
        if self.n_heads % self.kv_heads:
            raise ConfigError(f"--model.n-kv-heads={self.kv_heads} must divide --model.n-heads={self.n_heads}")
        if self.is_moe and self.top_k > self.num_experts:
            raise ConfigError(f"--model.top-k={self.top_k} exceeds --model.num-experts={self.num_experts}; lower "
                              "--model.top-k or raise --model.num-experts")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1

    @property
    def ffn(self) -> int:
        """Resolved FFN (per-expert) intermediate size."""
        return self.ffn_dim if self.ffn_dim is not None else self.d_model

    @property
    def kv_heads(self) -> int:
        """Resolved number of key/value heads."""
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


@dataclass
class MoEConfig:
    """How MoE layers run: DeepSpeed backend, expert parallelism, auxiliary losses."""

    backend: Literal["autoep", "native"] = "autoep"
    """autoep: DeepSpeed AutoEP (dropless token-choice top-k, grouped GEMM, expert parallelism, ZeRO 0-3).
    native: deepspeed.moe.layer.MoE (GShard gate, capacity factor and token dropping, ZeRO 0-2)."""
    ep_size: int = 1
    """Expert-parallel size: each rank holds num_experts / ep_size experts. Must divide the world size."""
    aux_loss_coef: float = 0.01
    """Coefficient of the load-balancing loss E * sum_e f_e * p_e (ours: OLMoE's 0.01)."""
    z_loss_coef: float = 0.001
    """Coefficient of the router z-loss mean(logsumexp(logits)^2) (ours: OLMoE's 0.001)."""
    capacity_factor: Optional[float] = None
    """native only: expert capacity as a multiple of the even share of tokens; tokens over it are dropped.
    None: dropless (the paper's setting)."""
    eval_capacity_factor: Optional[float] = None
    """native only: capacity factor in evaluation. None: same as capacity_factor."""
    min_capacity: int = 4
    """native only: lower bound of each expert's capacity when dropping."""
    autoep_experts: Literal["grouped", "deepspeed"] = "grouped"
    """autoep only: who computes the experts inside DeepSpeed's AutoEP layer. grouped: our grouped SwiGLU
    (ds_parrots/model/grouped_swiglu.py) wherever DeepSpeed would loop over experts (the CPU: no grouped GEMM
    there), same parameters, routing and all-to-all; deepspeed: DeepSpeed's own expert compute."""
    native_experts: Literal["trimmed", "deepspeed"] = "trimmed"
    """native only: how DeepSpeed's capacity-slotted experts run. trimmed: each expert only on the slots
    that hold tokens (ds_parrots/model/trimmed_experts.py; exact, since a zero slot gives zero output and
    gradients); deepspeed: every expert on all C slots, C being the busiest expert's load when dropless."""

    def __post_init__(self) -> None:
        if self.ep_size < 1:
            raise ConfigError(f"--moe.ep-size={self.ep_size} must be >= 1")
        if self.aux_loss_coef < 0 or self.z_loss_coef < 0:
            raise ConfigError("--moe.aux-loss-coef and --moe.z-loss-coef must be >= 0")
        if self.capacity_factor is not None and self.capacity_factor <= 0:
            raise ConfigError(f"--moe.capacity-factor={self.capacity_factor} must be > 0 (or omitted: dropless)")


@dataclass
class OptimConfig:
    """AdamW with linear warmup then linear decay (the paper's schedule)."""

    lr: float = 1e-3
    """Peak learning rate (paper: 1e-3)."""
    weight_decay: float = 0.1
    """AdamW weight decay on matrices; norms and biases are never decayed (paper: 0.1)."""
    beta1: float = 0.9
    """AdamW beta1 (ours)."""
    beta2: float = 0.95
    """AdamW beta2 (ours)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    warmup_frac: float = 0.2
    """Fraction of the steps spent in linear warmup from 0 (paper: the first 20%)."""
    final_lr_frac: float = 0.0
    """Learning rate at the last step as a fraction of the peak (linear decay; paper: linear decay, ours: to 0)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0 disables clipping (ours)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.warmup_frac <= 1.0:
            raise ConfigError(f"--optim.warmup-frac={self.warmup_frac} must be in [0, 1]")
        if self.lr <= 0:
            raise ConfigError(f"--optim.lr={self.lr} must be > 0")


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


@dataclass
class DataConfig:
    """Pre-training data: a mixture of tokenized sources, cut into fixed-length sequences."""

    mixture: str = ""
    """Mixture JSON file listing token files (Megatron .bin/.idx prefixes) and weights, or the name of one
    shipped in ds_configs/mixtures (e.g. natural_language, math). Required."""
    data_root: Optional[str] = None
    """Directory that relative paths in the mixture are resolved against (None: the current directory)."""
    seq_len: int = 2048
    """Tokens per training sequence (paper: 2048). Sequences are packed across documents."""
    val_sequences: int = 5000
    """Held-out validation sequences drawn from the training distribution, never trained on (paper: 5,000)."""
    tokenizer: Optional[str] = None
    """Sentencepiece model the data was tokenized with; if given, the model's vocabulary is checked against it."""

    def __post_init__(self) -> None:
        if self.seq_len < 1:
            raise ConfigError(f"--data.seq-len={self.seq_len} must be >= 1")
        if self.val_sequences < 0:
            raise ConfigError(f"--data.val-sequences={self.val_sequences} must be >= 0")


# ---------------------------------------------------------------------------------------------
# Named presets. A preset fills ModelConfig fields; flags given on the command line win.
# ---------------------------------------------------------------------------------------------

def _heads(d: int) -> int:
    # ours: head size 64 up to d=1024, 128 above (as Mistral), which keeps SDPA efficient on GPUs.
    return d // 64 if d <= 1024 else d // 128


def _preset(d: int, experts: int, layers: int, vocab: Optional[int]) -> dict:
    heads = _heads(d)
    # Mistral-style grouped-query attention, 4 query heads per key/value head where heads allow it.
    kv = max(1, heads // 4)
    out = dict(d_model=d, n_layers=layers, n_heads=heads, n_kv_heads=kv, ffn_dim=None, num_experts=experts, top_k=2)
    if vocab is not None:
        out["vocab_size"] = vocab
    return out


def _build_presets() -> dict[str, dict]:
    presets: dict[str, dict] = {}
    # The synthetic grid: widths 256/512/1024 x experts 1 (dense)/8/16/32/64, top-2, FFN = d.
    for d in (256, 512, 1024):
        for e in (1, 8, 16, 32, 64):
            name = f"synthetic-d{d}-" + ("dense" if e == 1 else f"e{e}")
            presets[name] = _preset(d, e, layers=12, vocab=None)
    # The pre-training grid: L=20, 32k vocabulary; dense widths 256..4096, MoE widths 256..1024.
    for d in (256, 512, 1024, 2048, 4096):
        presets[f"paper-dense-d{d}"] = _preset(d, 1, layers=20, vocab=32000)
    for d in (256, 512, 1024):
        for e in (8, 16, 32, 64):
            presets[f"paper-moe-d{d}-e{e}"] = _preset(d, e, layers=20, vocab=32000)
    # Small models that train on a CPU in minutes (README quick start, tests).
    presets["tiny-dense"] = dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128, num_experts=1)
    presets["tiny-moe"] = dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64, num_experts=8,
                               top_k=2)
    return presets


PRESETS: dict[str, dict] = _build_presets()


def preset_model(name: str, base: Optional[ModelConfig] = None) -> ModelConfig:
    """The ModelConfig of a named preset (on top of `base`, whose other fields are kept)."""
    if name not in PRESETS:
        close = [p for p in PRESETS if name.split("-")[0] in p][:6] or list(PRESETS)[:6]
        raise ConfigError(f"unknown preset {name!r}; known presets include {', '.join(close)} "
                          "(see `ds-parrots presets`)")
    base = base or ModelConfig()
    return dataclasses.replace(base, **PRESETS[name])


@dataclass
class RunConfig:
    """Fields shared by every training subcommand."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture (a --preset fills it; these flags override the preset)."""
    moe: MoEConfig = field(default_factory=MoEConfig)
    """MoE backend, expert parallelism and router losses (ignored by dense models)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer and learning-rate schedule."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Batching, precision, ZeRO, checkpoints and logging."""
    preset: Optional[str] = None
    """Named model preset (e.g. synthetic-d256-e8, paper-moe-d512-e64, tiny-moe); --model.* flags override it.
    List them with `ds-parrots presets`."""
