"""One writer per run directory: rank 0 of a launch holds an exclusive flock on run_dir/.lock for the whole run;
a second launch into the directory is refused before it writes anything, on every rank and node.

The kernel drops a flock when its holder dies, however it dies, so the file a killed run leaves behind blocks
nobody: the lock is the flock, not the file (which is never deleted: unlinking a lock file lets two writers
lock two different inodes). The file holds the holder's host, pid, start time and launch, for the message.

Ranks other than 0 probe with a shared lock, which fails while anyone holds the exclusive one: if the holder
recorded their own launch (same rendezvous address and port, and Slurm job, if any) it is their rank 0;
otherwise another run holds the directory and they refuse too, so no node of the refused launch waits for a
peer that left. Across nodes this needs a file system whose flock is shared between clients (NFS emulates it
with byte-range locks; Lustre needs the `flock` mount option; a node-local directory locks per node only).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError

LOCK_FILE = ".lock"

# Held locks of this process by run directory: open file descriptions must stay open to hold their flock,
# and a second open of the same file in this process (an in-process test, a retry) would conflict with it.
_held: dict[str, int] = {}


def launch_id() -> str:
    """What every rank of one launch shares and a concurrent launch cannot: its rendezvous (a live run's rank
    0 keeps its port bound), and the Slurm job if there is one."""
    env = os.environ
    ident = f"{env.get('MASTER_ADDR', socket.gethostname())}:{env.get('MASTER_PORT', '')}"
    return ident + (f" slurm job {env['SLURM_JOB_ID']}" if env.get("SLURM_JOB_ID") else "")


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _in_use(run_dir: Path, holder: dict) -> ConfigError:
    return ConfigError(
        f"{run_dir} is in use by pid {holder.get('pid', '?')} on host {holder.get('host', '?')} (started "
        f"{holder.get('started', 'at an unknown time')}); wait for it, or pick another --train.run-name"
    )


def acquire(run_dir: Path, wait_s: float = 2.0) -> bool:
    """Take the run directory's lock for this process (rank 0), creating the directory if needed; True if this
    call created it. Raises ConfigError if another live process holds it. Retried for `wait_s`: a peer's
    shared probe (check_free) holds the file for an instant, a run holds it for good."""
    run_dir = Path(run_dir)
    key = str(run_dir.resolve())
    if key in _held:
        return False
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            os.close(fd)
            raise _in_use(run_dir, _holder(path)) from None
        except OSError:
            os.close(fd)
            raise
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "launch": launch_id(),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    _held[key] = fd
    return created


def release(run_dir: Path, created: bool = False) -> None:
    """Drop this process's lock, and remove the directory if acquire() created it (a command refused after
    taking it). The lock file of a directory that existed stays: see the module's docstring."""
    fd = _held.pop(str(Path(run_dir).resolve()), None)
    if fd is not None:
        os.close(fd)
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)


def check_free(run_dir: Path, wait_s: float = 3.0) -> None:
    """For ranks other than 0: refuse if a process of another launch holds the lock. Creates nothing. A lock
    whose record names no launch yet, or another, is re-read for `wait_s`: our rank 0 may have locked the file
    (left by an earlier run) an instant before it rewrote the record."""
    path = Path(run_dir) / LOCK_FILE
    if str(Path(run_dir).resolve()) in _held:
        return
    deadline = time.monotonic() + wait_s
    while True:
        holder = _probe(path)
        if holder is None or holder.get("launch") == launch_id():
            return
        if time.monotonic() > deadline:
            raise _in_use(Path(run_dir), holder)
        time.sleep(0.1)


def _probe(path: Path) -> Optional[dict]:
    """The holder's record if some process holds the exclusive lock, else None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(path)
    finally:
        os.close(fd)  # also drops the shared lock at once: rank 0's exclusive attempt must not meet it
    return None
