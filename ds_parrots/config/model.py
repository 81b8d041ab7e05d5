"""The model's architecture and the named presets that fill it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ds_parrots.config.checks import number
from ds_parrots.errors import ConfigError


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
    """Longest sequence the model takes (its rotary tables; the window evaluation and export see). Unset, training
    sets it to what it trains on: a synthetic task's longest example, pretrain's --data.seq-len. Given, it is
    kept if at least that long, and refused if shorter."""
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
        for name in (
            "vocab_size",
            "d_model",
            "n_layers",
            "n_heads",
            "n_kv_heads",
            "ffn_dim",
            "num_experts",
            "top_k",
            "max_seq_len",
        ):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--model.{name.replace('_', '-')}={getattr(self, name)} must be >= 1")
        number("--model.rope-theta", self.rope_theta, 0, low_open=True)
        number("--model.norm-eps", self.norm_eps, 0, low_open=True)
        number("--model.init-std", self.init_std, 0, low_open=True)
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"--model.d-model={self.d_model} is not divisible by --model.n-heads={self.n_heads}; "
                "choose heads that divide the width"
            )
        if (self.d_model // self.n_heads) % 2:
            raise ConfigError(
                f"head size {self.d_model // self.n_heads} (d-model / n-heads) must be even for rotary "
                "embeddings; change --model.n-heads"
            )
        if self.n_heads % self.kv_heads:
            raise ConfigError(
                f"--model.n-kv-heads={self.kv_heads} must divide --model.n-heads={self.n_heads}"
            )
        if self.is_moe and self.top_k > self.num_experts:
            raise ConfigError(
                f"--model.top-k={self.top_k} exceeds --model.num-experts={self.num_experts}; lower "
                "--model.top-k or raise --model.num-experts"
            )

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


def _heads(d: int) -> int:
    # ours: head size 64 up to d=1024, 128 above (as Mistral), which keeps SDPA efficient on GPUs.
    return d // 64 if d <= 1024 else d // 128


def _preset(d: int, experts: int, layers: int, vocab: Optional[int]) -> dict:
    heads = _heads(d)
    # Mistral-style grouped-query attention, 4 query heads per key/value head where heads allow it.
    kv = max(1, heads // 4)
    out = dict(
        d_model=d, n_layers=layers, n_heads=heads, n_kv_heads=kv, ffn_dim=None, num_experts=experts, top_k=2
    )
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
    presets["tiny-moe"] = dict(
        d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64, num_experts=8, top_k=2
    )
    return presets


PRESETS: dict[str, dict] = _build_presets()


def preset_model(name: str, base: Optional[ModelConfig] = None) -> ModelConfig:
    """The ModelConfig of a named preset (on top of `base`, whose other fields are kept)."""
    if name not in PRESETS:
        close = [p for p in PRESETS if name.split("-")[0] in p][:6] or list(PRESETS)[:6]
        raise ConfigError(
            f"unknown preset {name!r}; known presets include {', '.join(close)} (see `ds-parrots presets`)"
        )
    base = base or ModelConfig()
    return dataclasses.replace(base, **PRESETS[name])


def fit_sequence_length(model: ModelConfig, needed: int, given: bool, what: str) -> ModelConfig:
    """The model as trained on sequences of up to `needed` tokens: --model.max-seq-len when the user gave it
    (and it is long enough), else exactly `needed`."""
    if not given:
        return dataclasses.replace(model, max_seq_len=needed)
    if model.max_seq_len < needed:
        raise ConfigError(
            f"--model.max-seq-len={model.max_seq_len} is shorter than {what} ({needed} tokens); "
            "raise it, or drop the flag to use exactly that length"
        )
    return model
