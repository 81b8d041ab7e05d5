"""Activation checkpointing as a wrapper applied to a built model (--train.activation-checkpointing): each
decoder block keeps only its input and reruns in the backward pass (torch.utils.checkpoint, non-reentrant).

Why not torch's checkpoint_wrapper: it nests each block in another module, which renames every parameter
(`layers.0._checkpoint_wrapped_module.mlp...`), and DeepSpeed AutoEP's module matching, our router capture,
checkpoints (resumable with checkpointing switched on or off) and the state-dict map all key on the names. Here
each block's class becomes a subclass whose `__call__` runs the whole module call (its hooks included, which
ZeRO-3 needs to gather parameters again in the recomputation) under torch.utils.checkpoint: same modules, same
names, same parameters.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@functools.cache
def _checkpointed_class(cls: type) -> type:
    class Checkpointed(cls):
        _plain_class = cls

        def __call__(self, *args, **kwargs):
            # Only a training forward that will be differentiated has activations worth dropping; evaluation
            # and cached generation run the block as it is.
            if self.training and torch.is_grad_enabled():
                return checkpoint(super().__call__, *args, use_reentrant=False, **kwargs)
            return super().__call__(*args, **kwargs)

    Checkpointed.__name__ = Checkpointed.__qualname__ = f"Checkpointed{cls.__name__}"
    return Checkpointed


def apply_activation_checkpointing(model: nn.Module, enabled: bool = True) -> int:
    """Checkpoint every block of `model.model.layers` in training (enabled), or undo it; returns how many
    blocks are checkpointed."""
    layers = model.model.layers
    for layer in layers:
        plain = getattr(type(layer), "_plain_class", type(layer))
        layer.__class__ = _checkpointed_class(plain) if enabled else plain
    return len(layers) if enabled else 0
