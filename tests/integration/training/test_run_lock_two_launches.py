"""One writer per run directory, through real 2-rank runs: while a run lives, a second launch into its
directory is refused on every rank in one line naming the holder and writes nothing; once the first run is
killed, its lock blocks nobody."""

import json
import os
import signal
import socket
import subprocess

import pytest

from helpers import REPO, cpu_env, results, run_train, train_cmd

pytestmark = [pytest.mark.slow, pytest.mark.multirank]


def args(tmp_path, seed: int, steps: int) -> list[str]:
    return [
        "phonebook",
        "--preset",
        "tiny-dense",
        "--task.book-size",
        "32",
        "--train.global-batch",
        "8",
        "--train.no-progress",
        "--train.max-eval",
        "4",
        "--train.steps",
        str(steps),
        "--train.seed",
        str(seed),
        "--train.out-dir",
        str(tmp_path),
        "--train.run-name",
        "run",
    ]


def test_second_run_is_refused_while_the_first_lives_and_allowed_once_it_is_killed(tmp_path):
    run_dir = tmp_path / "run"
    # The first run hangs at step 2 on both ranks: alive and holding the directory for as long as the test needs.
    first = subprocess.Popen(
        train_cmd(args(tmp_path, seed=1, steps=6), 2),
        cwd=REPO,
        env=dict(cpu_env(), DS_PARROTS_FAULT="hang@2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for line in first.stdout:
            if line.startswith("[fault injection]"):
                break
        else:
            pytest.fail("the first run ended before its fault")
        holder = json.loads((run_dir / ".lock").read_text())
        config = (run_dir / "config.json").read_text()
        assert json.loads(config)["train"]["seed"] == 1

        second = run_train(args(tmp_path, seed=2, steps=4), nproc=2, timeout=240, check=False)
        assert second.returncode != 0
        errors = {line for line in second.stderr.splitlines() if line.startswith("error:")}
        assert errors == {
            f"error: {run_dir} is in use by pid {holder['pid']} on host {socket.gethostname()} (started "
            f"{holder['started']}); wait for it, or pick another --train.run-name"
        }, second.stderr[-3000:]
        assert "Traceback" not in second.stderr
        assert (run_dir / "config.json").read_text() == config  # the second run wrote nothing
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # every rank of the first run, as a node failure would
        first.wait()

    # Its lock file stays behind, but the kernel released the lock with the processes.
    assert (run_dir / ".lock").is_file()
    run_train(args(tmp_path, seed=3, steps=4), nproc=2, timeout=300)
    assert [h["step"] for h in results(run_dir)["loss_history"]][-1] == 4
    assert json.loads((run_dir / "config.json").read_text())["train"]["seed"] == 3
