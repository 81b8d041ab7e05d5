"""Console lines, the progress bar and TensorBoard (training/logger.py's RunLogger, rank 0)."""

from __future__ import annotations

from ds_parrots.training.callbacks.base import Callback


class Logging(Callback):
    order = 90  # after every callback that adds scalars

    def __init__(self, log, expert_load=None):
        self.log = log
        self.expert_load = expert_load

    def on_start(self, trainer) -> None:
        self.log.start_at(trainer.step)

    def post_train_batch(self, trainer, step, out) -> None:
        self.log.advance()

    def on_log(self, trainer, step, out, scalars) -> None:
        self.log.step(step, scalars, self.expert_load.load if self.expert_load is not None else None)
