"""Fault injection for the reliability tests: make a real run fail at a chosen step, on a chosen rank.

    DS_PARROTS_FAULT="sigkill@6:1"             rank 1 is SIGKILLed right after finishing step 6
    DS_PARROTS_FAULT="hang@3:1"                rank 1 stops responding before step 3
    DS_PARROTS_FAULT="nan@5"                   the loss of step 5 is NaN on every rank (so are its gradients)
    DS_PARROTS_FAULT="sigkill_in_save@8:1"     rank 1 dies after writing its files of checkpoint 8, before the
                                               checkpoint is marked complete
    DS_PARROTS_FAULT="sigterm@4:1"             rank 1 gets a real SIGTERM while step 4 trains (preemption)
    DS_PARROTS_FAULT="sigterm_in_save@4"       a SIGTERM arrives while checkpoint 4 is being written
Several faults: comma-separated. Without ":rank" a fault hits every rank.

The faults are the real thing (a process killed by the kernel, a process that sleeps, a NaN that flows through
backward and the optimizer), injected at a chosen point so that a test is deterministic. Unset, every check is
one dictionary lookup.

Production code never calls these: the training recipes attach `FaultInjection` as a Trainer callback when
DS_PARROTS_FAULT is set (`callbacks_from_env`).
"""

from __future__ import annotations

import os
import signal
import time
from functools import cache
from typing import Optional

from ds_parrots.training.callbacks.base import Callback

ENV = "DS_PARROTS_FAULT"
KINDS = ("sigkill", "hang", "nan", "sigkill_in_save", "sigterm", "sigterm_in_save")


@cache
def _parse(spec: str) -> tuple[tuple[str, int, Optional[int]], ...]:
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        try:
            kind, where = item.split("@")
            step, _, rank = where.partition(":")
            fault = (kind, int(step), int(rank) if rank else None)
        except ValueError:
            raise ValueError(f"{ENV}={spec!r}: {item!r} is not kind@step[:rank]") from None
        if kind not in KINDS:
            raise ValueError(f"{ENV}={spec!r}: unknown fault {kind!r}; one of {', '.join(KINDS)}")
        out.append(fault)
    return tuple(out)


def active(kind: str, step: int, rank: int) -> bool:
    spec = os.environ.get(ENV)
    if not spec:
        return False
    return any(k == kind and s == step and r in (None, rank) for k, s, r in _parse(spec))


def inject(kind: str, step: int, rank: int) -> None:
    """Die or hang here if the environment asks for `kind` at this step on this rank."""
    if not active(kind, step, rank):
        return
    print(f"[fault injection] {kind} at step {step} on rank {rank}", flush=True)
    if kind in ("sigkill", "sigkill_in_save"):
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind in ("sigterm", "sigterm_in_save"):
        os.kill(os.getpid(), signal.SIGTERM)
    elif kind == "hang":
        while True:
            time.sleep(3600)


class FaultInjection(Callback):
    """The faults of DS_PARROTS_FAULT as a Trainer callback (see training/callbacks/base.py for the hooks)."""

    order = (
        55  # after logging a step, before its evaluation and checkpoint (where the faults have always been)
    )

    def __init__(self):
        import torch.distributed as dist

        self.rank = dist.get_rank()
        self._poison = None

    def pre_step(self, trainer, step: int) -> None:
        inject("hang", step, self.rank)
        inject("sigterm", step, self.rank)
        if active("nan", step, self.rank):
            # NaN logits: the loss, and through backward every gradient, of this step are NaN.
            self._poison = trainer.engine.module.lm_head.register_forward_hook(
                lambda m, i, out: out * float("nan")
            )

    def post_step(self, trainer, step: int, out) -> None:
        if self._poison is not None:
            self._poison.remove()
            self._poison = None
        inject("sigkill", step, self.rank)

    def on_checkpoint_files_written(self, trainer, step: int) -> None:
        inject("sigkill_in_save", step, self.rank)
        inject("sigterm_in_save", step, self.rank)


def callbacks_from_env() -> list:
    """[FaultInjection()] when DS_PARROTS_FAULT is set (a bad spec fails here, before training), else []."""
    spec = os.environ.get(ENV)
    if not spec:
        return []
    _parse(spec)
    return [FaultInjection()]
