"""Preemption: a signal that means "stop soon" (SLURM's SIGTERM before a kill, or the USR1 of
`--signal=USR1@<seconds>`) becomes a checkpoint at the next step boundary and an exit the scheduler can requeue.

The handler only records the signal: Python runs it between bytecodes of the main thread, wherever the step is,
and saving from there could interleave with a collective in flight. The Trainer reads the record after each
step, in the collective it runs anyway (every rank agrees, so all of them save the same step), saves, and
raises RunPreempted. A second signal during the save changes nothing (saves are atomic, see checkpoint.py).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Optional

from ds_parrots.errors import RunPreempted

__all__ = ["PreemptionSignals", "RunPreempted"]


class PreemptionSignals:
    """Context manager: while inside, the named signals are recorded instead of ending the process."""

    def __init__(self, names: tuple[str, ...]):
        self.signals = [signal.Signals[n] for n in names]
        self.received: Optional[signal.Signals] = None
        self._previous: dict = {}

    def __enter__(self) -> PreemptionSignals:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._record)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _record(self, signum, frame) -> None:
        rank = os.environ.get("RANK", "0")
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signal.Signals(signum)
            print(
                f"rank {rank}: {name} received: saving a checkpoint after the current step",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"rank {rank}: {name} received again: the checkpoint is being saved; it stays consistent",
                file=sys.stderr,
                flush=True,
            )
