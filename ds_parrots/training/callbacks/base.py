"""The hooks a Trainer calls, in the order of a run (OLMo-core's callback model, pared down to ours).

on_start        after resume / init-from, before the first step
pre_step        before step `step` (1-based) trains
post_train_batch  after it trained and its non-finite check passed
on_log          every --train.log-every steps: add entries to `scalars`, or write them out
post_step       last: evaluation, checkpoints
on_checkpoint_files_written   inside a save, after every rank's files are on disk and before the checkpoint
                is marked complete (a kill here must leave the previous checkpoint in force)
on_end          after the final evaluation and checkpoint
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ds_parrots.training.step import StepOutput
    from ds_parrots.training.trainer import Trainer


class Callback:
    """Override what you need; every hook is collective-safe only if it runs on every rank."""

    order = 50
    """Callbacks run in increasing order: those that add scalars before those that write them."""

    def on_start(self, trainer: Trainer) -> None:
        pass

    def pre_step(self, trainer: Trainer, step: int) -> None:
        pass

    def post_train_batch(self, trainer: Trainer, step: int, out: StepOutput) -> None:
        pass

    def post_step(self, trainer: Trainer, step: int, out: StepOutput) -> None:
        pass

    def on_log(self, trainer: Trainer, step: int, out: StepOutput, scalars: dict) -> None:
        pass

    def on_checkpoint_files_written(self, trainer: Trainer, step: int) -> None:
        pass

    def on_end(self, trainer: Trainer) -> None:
        pass
