"""Faults a training run detects itself: a rank that died or hangs, a non-finite loss or gradient.

Lost ranks. Every collective runs under --train.collective-timeout (the process group's timeout), so a rank
waiting on a peer that died or hangs gets an error within that time instead of waiting forever. The ranks that
got one then check in on the rendezvous store (torch.distributed's TCPStore, which lives outside the failed
collectives) and, after a grace period, the ranks that never checked in are the ones named in the error.

Non-finite steps. DeepSpeed's ZeRO optimizers (and its bf16 optimizer) skip an update whose gradient norm is not
finite; without ZeRO (stage 0, fp32) nothing of DeepSpeed's does, so our optimizer skips such an update the way
DeepSpeed's do (parallel/optimizer.SkippableAdamW, from the global gradient norm it clips with). The training
loop then applies --train.on-nonfinite: stop, naming the step, its samples and the last good checkpoint, or skip
the step and count it.
"""

from __future__ import annotations

import time
from typing import Optional

import torch.distributed as dist

ALIVE_KEY = "ds_parrots/alive/"


def is_collective_failure(e: BaseException) -> bool:
    """A collective that timed out or lost its peer: gloo raises plain RuntimeErrors naming itself; NCCL and the
    store raise torch.distributed's DistError family."""
    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(
        s in text for s in ("gloo", "Gloo", "NCCL", "Timed out", "Connection reset", "Connection closed")
    )


def lost_ranks(grace_s: float) -> Optional[list[int]]:
    """Check in on the rendezvous store and return the ranks that did not within `grace_s` seconds (None when the
    store itself is unreachable: then the rank hosting it, rank 0, is gone)."""
    try:
        from torch.distributed.distributed_c10d import _get_default_store

        store, rank, world = _get_default_store(), dist.get_rank(), dist.get_world_size()
        store.set(f"{ALIVE_KEY}{rank}", "1")
        deadline = time.monotonic() + grace_s
        while True:
            missing = [r for r in range(world) if not store.check([f"{ALIVE_KEY}{r}"])]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.2)
    except Exception:  # the store lives in rank 0's process; any failure to reach it means rank 0 is gone
        return None


def rank_loss_message(
    error: BaseException,
    where: str,
    timeout_s: float,
    missing: Optional[list[int]],
    last_checkpoint: Optional[str],
) -> str:
    if missing is None:
        who = "rank 0 (which hosts the rendezvous store) is unreachable"
    elif missing:
        who = f"rank{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} stopped responding"
    else:
        who = "every rank is alive but a collective failed"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    resume = (
        f"resume from {last_checkpoint} with --train.resume once the node is healthy"
        if last_checkpoint
        else "no checkpoint was saved yet: start the run again once the node is healthy"
    )
    return (
        f"during {where}: {who} (a collective on rank {dist.get_rank()} failed after at most "
        f"--train.collective-timeout={timeout_s:g} s: {first_line[:200]}); check that rank's log for why it "
        f"died or hung; {resume}"
    )


def nonfinite_message(
    step: int, reports: list[dict], global_batch: int, last_checkpoint: Optional[str]
) -> str:
    """What happened at a non-finite step and where to find its batch. `reports`: each rank's {"rank",
    "micro_batches": indices of its micro-batches whose loss was not finite}."""
    where = "; ".join(
        f"rank {r['rank']} micro-batch{'es' if len(r['micro_batches']) > 1 else ''} "
        f"{', '.join(map(str, r['micro_batches']))}"
        for r in reports
        if r["micro_batches"]
    )
    what = f"non-finite loss ({where})" if where else "non-finite gradient (the loss was finite)"
    first = (step - 1) * global_batch
    saved = f"last good checkpoint: {last_checkpoint}" if last_checkpoint else "no checkpoint saved yet"
    return (
        f"step {step}: {what}; the update was not applied. The step's batch is samples {first:,}..."
        f"{first + global_batch - 1:,} of the run's sample order; {saved}"
    )
