"""Checkpoints: resume at start (--train.resume), save every --train.save-every steps and at the end."""

from __future__ import annotations

from collections.abc import Callable

import torch.distributed as dist

from ds_parrots.training import checkpoint
from ds_parrots.training.callbacks.base import Callback


class Checkpointing(Callback):
    order = 70

    def __init__(self, client_state: Callable[[int], dict] = lambda step: {}):
        self.client_state = client_state

    def on_start(self, trainer) -> None:
        if not trainer.train.resume:
            return
        state = checkpoint.load(trainer.engine, trainer.run_dir)
        trainer.step = int(state.get("step", 0))
        trainer.nonfinite_steps = list(state.get("nonfinite_steps", []))
        trainer.log.info(f"resumed from step {trainer.step} ({checkpoint.checkpoint_dir(trainer.run_dir)})")

    def post_step(self, trainer, step, out) -> None:
        every = trainer.train.save_every
        if every and step % every == 0 and step != trainer.train.steps:
            self.save(trainer, step)

    def on_end(self, trainer) -> None:
        if trainer.step > trainer.start or not trainer.train.resume:
            self.save(trainer, trainer.step)

    def save(self, trainer, step: int) -> None:
        trainer.where = f"the checkpoint of step {step}"
        train = trainer.train
        state = {
            "step": step,
            "samples": step * train.global_batch,
            "nonfinite_steps": trainer.nonfinite_steps,
            **self.client_state(step),
        }
        topology = {
            "world_size": dist.get_world_size(),
            "ep_size": trainer.model.moe.ep_size,
            "zero_stage": train.zero_stage,
            "step": step,
        }
        tag = checkpoint.save(
            trainer.engine,
            trainer.run_dir,
            step,
            state,
            topology,
            train.keep_last,
            on_files_written=lambda: trainer.callback("on_checkpoint_files_written", step),
        )
        trainer.log.info(f"saved checkpoint {tag}")
