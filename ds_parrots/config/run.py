"""The sections every training subcommand shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ds_parrots.config.model import ModelConfig
from ds_parrots.config.moe import MoEConfig
from ds_parrots.config.optim import OptimConfig
from ds_parrots.config.train import TrainConfig


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
