"""Evaluation every --train.eval-every steps and at the end; the recipe supplies what to evaluate."""

from __future__ import annotations

from collections.abc import Callable

from ds_parrots.training.callbacks.base import Callback


class Evaluation(Callback):
    order = 60  # before the checkpoint of the same step, as the run has always done

    def __init__(self, evaluate: Callable[[int], dict]):
        self.evaluate = evaluate
        self.metrics: dict = {}
        """The metrics of the final evaluation."""

    def post_step(self, trainer, step, out) -> None:
        every = trainer.train.eval_every
        if every and step % every == 0 and step != trainer.train.steps:
            self.run(trainer, step)

    def on_end(self, trainer) -> None:
        self.metrics = self.run(trainer, trainer.step)

    def run(self, trainer, step: int) -> dict:
        trainer.where = f"the evaluation at step {step}"
        module = trainer.engine.module
        module.eval()
        metrics = self.evaluate(step)
        module.train()
        trainer.log.scalars("eval", metrics, step)
        return metrics
