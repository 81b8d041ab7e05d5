"""One writer per run directory (training/run_lock.py), against real holder processes: a live holder refuses
rank 0 and the other ranks of another launch, a killed one blocks nobody."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from ds_parrots.errors import ConfigError
from ds_parrots.training import run_lock
from helpers import REPO


def hold(run_dir, **env):
    """A process that takes the lock the way rank 0 does and keeps it until killed."""
    code = (
        "import sys, time; from ds_parrots.training import run_lock; run_lock.acquire(sys.argv[1]); "
        "print('held', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(run_dir)],
        cwd=REPO,
        env=dict(os.environ, **env),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_holder_refuses_a_second_run_naming_host_and_pid(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    holder = hold(run_dir, MASTER_ADDR="127.0.0.1", MASTER_PORT="40001")
    try:
        record = json.loads((run_dir / run_lock.LOCK_FILE).read_text())
        assert record["pid"] == holder.pid and record["host"] == socket.gethostname()
        with pytest.raises(ConfigError) as e:
            run_lock.acquire(run_dir, wait_s=0.2)
        assert str(e.value).startswith(
            f"{run_dir} is in use by pid {holder.pid} on host {socket.gethostname()}"
        )
        assert "wait for it, or pick another --train.run-name" in str(e.value)
        monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
        monkeypatch.setenv("MASTER_PORT", "40002")  # another launch's rank 1
        with pytest.raises(ConfigError, match=f"in use by pid {holder.pid}"):
            run_lock.check_free(run_dir, wait_s=0.2)
        monkeypatch.setenv("MASTER_PORT", "40001")  # the holder's own launch: its rank 0 holds it
        run_lock.check_free(run_dir, wait_s=0.2)
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_process_blocks_nobody(tmp_path):
    run_dir = tmp_path / "run"
    holder = hold(run_dir)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (run_dir / run_lock.LOCK_FILE).is_file()  # the file stays; the kernel dropped the flock
    run_lock.check_free(run_dir, wait_s=0.2)
    try:
        assert run_lock.acquire(run_dir) is False  # the directory existed
        assert json.loads((run_dir / run_lock.LOCK_FILE).read_text())["pid"] == os.getpid()
        assert run_lock.acquire(run_dir) is False  # this process holds it already: no conflict with itself
    finally:
        run_lock.release(run_dir)


def test_release_removes_only_what_acquire_created(tmp_path):
    run_dir = tmp_path / "new" / "run"
    assert run_lock.acquire(run_dir) is True
    run_lock.release(run_dir, created=True)
    assert not run_dir.exists()
    run_lock.check_free(tmp_path / "never-created")  # nothing to check, nothing created
    assert not (tmp_path / "never-created").exists()
