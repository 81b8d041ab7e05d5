"""Process-group start and shutdown shared by every entry point (train, bench, test scripts)."""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Optional

import torch.distributed as dist


def ensure_process_group(timeout_s: Optional[float] = None) -> None:
    """Initialize torch.distributed through DeepSpeed; a plain `python train.py` becomes a 1-rank group.
    `timeout_s`: how long any collective may wait for its peers (None: DeepSpeed's default, 10 minutes)."""
    import deepspeed

    if "RANK" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    if not dist.is_initialized():
        kwargs = {} if timeout_s is None else {"timeout": timedelta(seconds=timeout_s)}
        deepspeed.init_distributed(verbose=False, **kwargs)
        if timeout_s is not None:
            # Groups made later (DeepSpeed's expert-parallel and expert-data-parallel groups) take torch's
            # module-level default, 30 minutes, not the world group's timeout: a rank hung inside an expert
            # all-to-all would stall its peers that long.
            from torch.distributed import distributed_c10d

            distributed_c10d.default_pg_timeout = timedelta(seconds=timeout_s)
        if dist.get_world_size() > 1:
            signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum, frame) -> None:
    """SIGTERM (the deepspeed launcher stopping the survivors of a failed rank, or a preempted SLURM job): the
    process is about to die, so free the job's shared-memory segments, which nothing else would."""
    _unlink_job_shm_buffers(int(os.environ.get("WORLD_SIZE", "1")))
    print(f"rank {os.environ.get('RANK', '?')}: terminated by SIGTERM", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def rank0_done(name: str) -> None:
    """A barrier after work only rank 0 does (building a cache) that may outlast the collective timeout: the
    other ranks wait on the rendezvous store, without a deadline, until rank 0 gets here."""
    from torch.distributed.distributed_c10d import _get_default_store

    key = f"ds_parrots/rank0_done/{name}"
    if dist.get_rank() == 0:
        _get_default_store().set(key, "1")
    else:
        _get_default_store().wait([key], timedelta(days=7))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shutdown(barrier: bool = True) -> None:
    """Tear the process groups down while the interpreter is fully alive.

    DeepSpeed engines sit in reference cycles, so without the gc.collect() they (and the gloo work
    handles ZeRO-3 keeps for prefetched parameters) are freed during interpreter finalization, after
    the groups are gone, and a rank can abort ("terminate called without an active exception", -6),
    which the launcher reports as a failed run. The barrier keeps one rank from tearing down while
    its peer still has a collective in flight; skip it when exiting on an error that other ranks
    may not share.
    """
    gc.collect()
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        if barrier:
            dist.barrier()
        dist.destroy_process_group()
        _forget_deepspeed_groups()
        if barrier:  # every peer has mapped it and is done with it
            _unlink_shm_buffer(rank)
        else:
            _unlink_job_shm_buffers(world)
    gc.collect()


def _forget_deepspeed_groups() -> None:
    """DeepSpeed (0.19.8, deepspeed/utils/groups.py) caches the expert-parallel, expert-data-parallel and world
    groups it made in module globals; after destroy_process_group they name groups that no longer exist, and a
    process that starts a new group (a benchmark building several engines, the test suite) would reuse them:
    "Group ... is not registered". Forget them with the groups they came from."""
    import sys

    groups = sys.modules.get("deepspeed.utils.groups")
    if groups is None:
        return
    for name, value in vars(groups).items():
        if name.startswith("_") and name.endswith(("_GROUP", "_GROUP_RANKS")):
            if isinstance(value, dict):
                value.clear()
            elif value is not None and not callable(value):
                setattr(groups, name, None)


def shm_buffer_path(rank: int) -> Path:
    """DeepSpeed's CPU shared-memory allreduce buffer of `rank` (ops/csrc/cpu/comm/shm.cpp names it so)."""
    return Path("/dev/shm") / (
        f"deepspeed_allreduce_buffer_{os.getuid()}_{os.environ.get('MASTER_ADDR', '')}_"
        f"{os.environ.get('MASTER_PORT', '')}_{rank}"
    )


def _unlink_shm_buffer(rank: int) -> None:
    # DeepSpeed 0.19.8 creates this ~69 MB segment for every CPU rank and never unlinks it (shm.cpp has a
    # shared_close that nothing calls): each multi-rank CPU run would keep 69 MB x ranks of RAM until reboot.
    shm_buffer_path(rank).unlink(missing_ok=True)


def _unlink_job_shm_buffers(world_size: int) -> None:
    # An aborted or terminated run: peers that died (or that the launcher kills next) never unlink theirs; the
    # names go, mappings still held stay valid.
    for r in range(world_size):
        _unlink_shm_buffer(r)


def exit_process(code: int) -> None:
    """Exit a finished entry-point process without running interpreter finalization.

    Even after `shutdown`, C++ objects still owned by DeepSpeed's module-level state (communication
    backends, extension ops) are destroyed in an arbitrary order at finalization and occasionally
    abort the process after all work is done and written; everything we own is closed by now.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
