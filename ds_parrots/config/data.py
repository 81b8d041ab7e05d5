"""Pre-training data: the mixture and sequence length."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ds_parrots.errors import ConfigError


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
