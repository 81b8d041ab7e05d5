"""Checkpoints: resume at start (--train.resume), save every --train.save-every steps, every
--train.save-every-minutes of wall time, and at the end."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch.distributed as dist

from ds_parrots.training import checkpoint
from ds_parrots.training.callbacks.base import Callback


class Checkpointing(Callback):
    order = 70

    def __init__(self, client_state: Callable[[int], dict] = lambda step: {}):
        self.client_state = client_state
        self.last_save = time.monotonic()

    def due_by_time(self, trainer) -> bool:
        """Whether --train.save-every-minutes has passed since the last save (read on rank 0; the Trainer makes
        every rank agree with it in its per-step collective)."""
        minutes = trainer.train.save_every_minutes
        return bool(minutes) and time.monotonic() - self.last_save >= 60 * minutes

    def on_start(self, trainer) -> None:
        self.last_save = time.monotonic()
        if not trainer.train.resume:
            return
        state = checkpoint.load(trainer.engine, trainer.run_dir, trainer.log.info)
        trainer.step = int(state.get("step", 0))
        trainer.nonfinite_steps = list(state.get("nonfinite_steps", []))
        trainer.log.info(f"resumed from step {trainer.step} ({checkpoint.checkpoint_dir(trainer.run_dir)})")

    def post_step(self, trainer, step, out) -> None:
        every = trainer.train.save_every
        if step != trainer.train.steps and ((every and step % every == 0) or trainer.save_due):
            self.save(trainer, step)

    def on_end(self, trainer) -> None:
        if trainer.step > trainer.start or not trainer.train.resume:
            self.save(trainer, trainer.step)

    def save(self, trainer, step: int) -> str:
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
        self.last_save = time.monotonic()
        return tag
