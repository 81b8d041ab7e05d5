"""State dicts on disk: loading safetensors / torch files and checking them against a model's shapes."""

from __future__ import annotations

from pathlib import Path

import torch

from ds_parrots.config import ModelConfig
from ds_parrots.errors import ConfigError


def check_against_model(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Size], source: Path
) -> None:
    """Refuse a state dict whose tensors are not exactly the model's, naming the first mismatches."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k]))
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if extra:
            parts.append(f"unexpected {extra[:3]}")
        if wrong:
            k = wrong[0]
            parts.append(f"{k} has shape {tuple(state[k].shape)}, the model wants {tuple(expected[k])}")
        raise ConfigError(
            f"{source} does not match the model configuration it was saved with: {'; '.join(parts)}"
        )


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise ConfigError(
            f"{path} is not a readable safetensors file: {str(e).splitlines()[0][:200]}"
        ) from None


def model_shapes(model: ModelConfig) -> dict[str, torch.Size]:
    """Names and shapes of the single-device model's tensors, without allocating its weights."""
    from ds_parrots.models import build_model

    with torch.device("meta"):
        return {k: v.shape for k, v in build_model(model).state_dict().items()}
