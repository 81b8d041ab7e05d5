"""Plain single-device PyTorch: one Mistral-style decoder whose feed-forward is dense or a Mixtral-style MoE.
Nothing here knows DeepSpeed; ds_parrots.parallel turns a model into an engine."""

from ds_parrots.config import ModelConfig
from ds_parrots.models.transformer import CausalLM


def build_model(model: ModelConfig) -> CausalLM:
    return CausalLM(model)
