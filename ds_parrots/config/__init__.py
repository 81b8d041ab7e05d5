"""Configuration dataclasses, one small file per component, and named presets.

Every field's docstring is its `--help` text. Values the paper does not publish are ours and are
marked so; they stay fields with defaults, never constants buried in code.
"""

from ds_parrots.config.data import DataConfig
from ds_parrots.config.files import shipped_file
from ds_parrots.config.model import PRESETS, ModelConfig, preset_model
from ds_parrots.config.moe import MoEConfig
from ds_parrots.config.optim import OptimConfig
from ds_parrots.config.run import RunConfig
from ds_parrots.config.train import TrainConfig

__all__ = [
    "DataConfig",
    "ModelConfig",
    "MoEConfig",
    "OptimConfig",
    "PRESETS",
    "RunConfig",
    "TrainConfig",
    "preset_model",
    "shipped_file",
]
