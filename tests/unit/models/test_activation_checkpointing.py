"""Activation checkpointing (each block recomputed in backward) changes memory, not results."""

import pytest
import torch

from ds_parrots.config import ModelConfig
from ds_parrots.models import build_model
from ds_parrots.parallel.activation_checkpointing import apply_activation_checkpointing
from ds_parrots.parallel.router_capture import RouterCapture
from ds_parrots.training.step import lm_loss


def loss_and_grads(cfg: ModelConfig, checkpointing: bool, x: torch.Tensor):
    torch.manual_seed(0)
    model = build_model(cfg)
    apply_activation_checkpointing(model, checkpointing)
    capture = RouterCapture(model, cfg.top_k) if cfg.is_moe else None
    loss = lm_loss(model(x[:, :-1]), x[:, 1:])
    if capture is not None:
        stats = capture.pop()
        loss = loss + 0.01 * stats.aux_loss + 0.001 * stats.z_loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("experts", [1, 8])
def test_same_loss_and_gradients_with_and_without_checkpointing(experts):
    cfg = ModelConfig(
        vocab_size=50,
        d_model=32,
        n_layers=3,
        n_heads=4,
        n_kv_heads=2,
        num_experts=experts,
        top_k=2,
        max_seq_len=24,
    )
    x = torch.randint(0, 50, (4, 17), generator=torch.Generator().manual_seed(1))
    loss_a, grads_a = loss_and_grads(cfg, False, x)
    loss_b, grads_b = loss_and_grads(cfg, True, x)
    assert loss_b == pytest.approx(loss_a, rel=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-5, atol=1e-7, msg=name)


def test_checkpointing_keeps_fewer_activations():
    # What it is for: the autograd graph of a checkpointed forward holds less. Measured as the bytes of
    # tensors saved for backward, counted through saved-tensor hooks.
    cfg = ModelConfig(vocab_size=50, d_model=32, n_layers=4, n_heads=4, max_seq_len=64)
    x = torch.randint(0, 50, (4, 64))
    saved = {}
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = build_model(cfg)
        apply_activation_checkpointing(model, checkpointing)
        total = [0]

        def pack(t):
            total[0] += t.numel() * t.element_size()  # noqa: B023 (called inside this iteration)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
        saved[checkpointing] = total[0]
    assert saved[True] < 0.6 * saved[False], saved
