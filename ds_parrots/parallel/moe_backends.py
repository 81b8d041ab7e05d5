"""DeepSpeed's native MoE layer in place of ours: the GShard gate and capacity around our SwiGLU experts, its
experts trimmed to occupied slots. (AutoEP's layer: parallel/autoep_tokens.py.)
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ds_parrots.checkpoints import state_dict_map
from ds_parrots.config import ModelConfig, MoEConfig
from ds_parrots.models.feed_forward import SwiGLU
from ds_parrots.models.moe import MoEFeedForward
from ds_parrots.parallel.trimmed_experts import run_occupied


class NativeMoEFeedForward(nn.Module):
    """deepspeed.moe.layer.MoE around our SwiGLU expert; returns only the hidden states."""

    def __init__(self, model: ModelConfig, moe: MoEConfig):
        super().__init__()
        from deepspeed.moe.layer import MoE

        dropless = moe.capacity_factor is None
        cf = 1.0 if dropless else moe.capacity_factor
        ecf = moe.eval_capacity_factor if moe.eval_capacity_factor is not None else cf
        self.moe = MoE(
            hidden_size=model.d_model,
            expert=SwiGLU(model.d_model, model.ffn),
            num_experts=model.num_experts,
            ep_size=moe.ep_size,
            k=model.top_k,
            capacity_factor=cf,
            eval_capacity_factor=ecf,
            min_capacity=moe.min_capacity,
            drop_tokens=not dropless,
            # Deterministic top-2 (DeepSpeed samples the 2nd expert by default): same routing
            # as the autoep backend and as our aux-loss bookkeeping.
            top2_2nd_expert_sampling=False,
            use_rts=not dropless,
        )
        if moe.native_experts == "trimmed":
            self.moe.deepspeed_moe.experts.__class__ = _trimmed_experts_class()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _l_aux, _counts = self.moe(x)
        return out


@functools.cache
def _trimmed_experts_class() -> type:
    """DeepSpeed's native Experts running each expert on its occupied capacity slots only: same modules,
    parameters and state-dict names, one forward changed (built on first use: importing DeepSpeed is slow)."""
    from deepspeed.moe.experts import Experts

    class TrimmedExperts(Experts):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return run_occupied(self.deepspeed_experts, inputs)

    return TrimmedExperts


def backend_state_dict(
    state: dict[str, torch.Tensor], model: ModelConfig, moe: MoEConfig, rank: int
) -> dict[str, torch.Tensor]:
    """A state dict in the single-device (Mixtral) layout, renamed for the model this backend builds on `rank`:
    the native layer holds only its expert-parallel rank's experts (checkpoints/state_dict_map.to_native);
    AutoEP slices the full tensors itself at initialize."""
    if model.is_moe and moe.backend == "native":
        return state_dict_map.to_native(state, model, moe.ep_size, rank)
    return state


def install_native_layers(model: nn.Module, cfg: ModelConfig, moe: MoEConfig, rank: int) -> None:
    """Replace the MoE feed-forward of every block with DeepSpeed's native layer, holding the same router and
    this rank's experts (copied from the plain model, so that both backends start from the same weights)."""
    state = model.state_dict()
    for layer in model.model.layers:
        if isinstance(layer.mlp, MoEFeedForward):
            layer.mlp = NativeMoEFeedForward(cfg, moe)
    model.load_state_dict(backend_state_dict(state, cfg, moe, rank), strict=True)
