"""AdamW and the learning-rate schedule."""

from __future__ import annotations

from dataclasses import dataclass

from ds_parrots.config.checks import number


@dataclass
class OptimConfig:
    """AdamW with linear warmup then linear decay (the paper's schedule)."""

    lr: float = 1e-3
    """Peak learning rate (paper: 1e-3)."""
    weight_decay: float = 0.1
    """AdamW weight decay on matrices; norms and biases are never decayed (paper: 0.1)."""
    beta1: float = 0.9
    """AdamW beta1 (ours)."""
    beta2: float = 0.95
    """AdamW beta2 (ours)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    warmup_frac: float = 0.2
    """Fraction of the steps spent in linear warmup from 0 (paper: the first 20%)."""
    final_lr_frac: float = 0.0
    """Learning rate at the last step as a fraction of the peak (linear decay; paper: linear decay, ours: to 0)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0 disables clipping (ours)."""

    def __post_init__(self) -> None:
        # torch's AdamW refuses some of these only once the run has started, and takes the others (a negative
        # decay, an infinite learning rate) and trains on them.
        number("--optim.lr", self.lr, 0, low_open=True)
        number("--optim.weight-decay", self.weight_decay, 0)
        number("--optim.beta1", self.beta1, 0, 1, high_open=True)
        number("--optim.beta2", self.beta2, 0, 1, high_open=True)
        number("--optim.eps", self.eps, 0, low_open=True)
        number("--optim.warmup-frac", self.warmup_frac, 0, 1)
        number("--optim.final-lr-frac", self.final_lr_frac, 0, 1)
        number("--optim.grad-clip", self.grad_clip, 0, hint=" (0 disables clipping)")
