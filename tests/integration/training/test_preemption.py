"""Preemption: a real SIGTERM (or SIGUSR1) mid-run becomes a checkpoint of the step it interrupted and exit code
75; --train.resume then continues bit-exactly. Signals are real: sent by the process to itself at a chosen step
(DS_PARROTS_FAULT=sigterm@N, testing/faults.py) or from outside to the launch script."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import REPO, cpu_env, free_port, results, run_train, shm_buffers

pytestmark = [pytest.mark.slow]

PREEMPTED = 75


def args(out: Path, name: str, steps: int = 6, *extra: str) -> list[str]:
    return [
        "phonebook",
        "--preset",
        "tiny-moe",
        "--model.d-model",
        "32",
        "--model.ffn-dim",
        "32",
        "--model.n-layers",
        "1",
        "--task.book-size",
        "40",
        "--train.steps",
        str(steps),
        "--train.global-batch",
        "8",
        "--train.no-progress",
        "--train.out-dir",
        str(out),
        "--train.run-name",
        name,
        "--optim.lr",
        "3e-3",
        "--train.zero-stage",
        "2",
        *extra,
    ]


def with_fault(spec: str) -> dict:
    return dict(cpu_env(), DS_PARROTS_FAULT=spec)


def train_with_env(cmd_args: list[str], nproc: int, env: dict) -> subprocess.CompletedProcess:
    from helpers import train_cmd

    return subprocess.run(
        train_cmd(cmd_args, nproc), cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def losses(run_dir: Path) -> list[float]:
    return [h["loss"] for h in results(run_dir)["loss_history"]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain")
    run_train(args(out, "plain"))
    return losses(out / "plain")


@pytest.mark.parametrize("sig", ["sigterm"])
def test_signal_mid_step_saves_that_step_and_resume_is_bit_exact(tmp_path, uninterrupted, sig):
    proc = train_with_env(args(tmp_path, "r"), 1, with_fault(f"{sig}@3"))
    assert proc.returncode == PREEMPTED, proc.stderr[-3000:]
    lines = [l for l in proc.stderr.splitlines() if l.startswith("preempted")]
    assert lines == [
        "preempted at step 3 (SIGTERM); checkpoint step00000003 saved; resume with --train.resume"
    ]
    ckpt = tmp_path / "r" / "checkpoints"
    assert (ckpt / "latest").read_text() == "step00000003"
    assert (ckpt / "step00000003" / "ds_parrots_complete.json").is_file()
    assert not (tmp_path / "r" / "results.json").exists()
    run_train(args(tmp_path, "r") + ["--train.resume"])
    assert losses(tmp_path / "r") == uninterrupted[3:]


def test_a_second_signal_during_the_save_leaves_it_complete(tmp_path, uninterrupted):
    proc = train_with_env(args(tmp_path, "r"), 1, with_fault("sigterm@2,sigterm_in_save@2"))
    assert proc.returncode == PREEMPTED, proc.stderr[-3000:]
    assert "received again" in proc.stderr
    marker = json.loads(
        (tmp_path / "r" / "checkpoints" / "step00000002" / "ds_parrots_complete.json").read_text()
    )
    assert marker["step"] == 2
    run_train(args(tmp_path, "r") + ["--train.resume"])
    assert losses(tmp_path / "r") == uninterrupted[2:]


@pytest.mark.multirank
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    out = tmp_path / "plain2"
    run_train(args(out, "p"), nproc=2)
    expected = losses(out / "p")
    before = shm_buffers()
    proc = train_with_env(args(tmp_path, "r"), 2, with_fault("sigterm@4:1"))
    assert proc.returncode == PREEMPTED, proc.stderr[-3000:]
    assert "rank 1: SIGTERM received" in proc.stderr and "rank 0: SIGTERM received" not in proc.stderr
    assert (tmp_path / "r" / "checkpoints" / "latest").read_text() == "step00000004"
    assert shm_buffers() <= before
    run_train(args(tmp_path, "r") + ["--train.resume"], nproc=2)
    assert losses(tmp_path / "r") == expected[4:]


def test_without_preempt_signals_sigterm_ends_the_run_as_before(tmp_path):
    proc = train_with_env(args(tmp_path, "r", 6, "--train.preempt-signals"), 1, with_fault("sigterm@3"))
    assert proc.returncode == -signal.SIGTERM
    assert not (tmp_path / "r" / "checkpoints").exists() or not any(
        (tmp_path / "r" / "checkpoints").glob("step*")
    )


@pytest.mark.multirank
def test_sigterm_to_the_launch_script_reaches_the_ranks_and_leaves_nothing_behind(tmp_path):
    # The real thing a cluster does: SIGTERM to the job's shell, here launch/single_node.sh with 2 ranks.
    port = str(free_port())
    env = dict(
        cpu_env(), DS_PARROTS_DEEPSPEED="python -m deepspeed.launcher.runner", DS_PARROTS_MASTER_PORT=port
    )
    cmd = [
        "bash",
        str(REPO / "launch" / "single_node.sh"),
        "2",
        *args(tmp_path, "r", 400, "--train.save-every", "2"),
    ]
    script = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    ckpt = tmp_path / "r" / "checkpoints"
    deadline = time.monotonic() + 300
    while not (ckpt / "step00000002" / "ds_parrots_complete.json").is_file():
        assert script.poll() is None and time.monotonic() < deadline, script.communicate()
        time.sleep(0.5)
    os.kill(script.pid, signal.SIGTERM)
    out, err = script.communicate(timeout=120)
    assert script.returncode == PREEMPTED, err[-3000:]
    forwarded = next(l for l in err.splitlines() if l.startswith("launch: SIGTERM received"))
    ranks = forwarded.split("(")[1].rstrip(")").split()
    assert len(ranks) == 2
    for pid in ranks:  # no orphan: every rank is gone with the script
        assert not Path(f"/proc/{pid}").exists()
    tag = (ckpt / "latest").read_text()
    assert f"checkpoint {tag} saved" in err and (ckpt / tag / "ds_parrots_complete.json").is_file()
    assert not [p for p in Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*")]
