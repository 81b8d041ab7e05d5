"""The model: one Mistral-style definition whose feed-forward is dense or MoE."""

from ds_parrots.config import ModelConfig, MoEConfig
from ds_parrots.model.moe import feed_forward_factory
from ds_parrots.model.transformer import CausalLM


def build_model(model: ModelConfig, moe: MoEConfig) -> CausalLM:
    return CausalLM(model, feed_forward_factory(model, moe))
