"""Faults injected into real runs (ds_parrots/testing/faults.py): a rank SIGKILLed mid-run and during a checkpoint save,
a rank that hangs, a NaN loss under each ZeRO stage, a checkpoint write that fails as on a full disk. Each
test asserts what survives and that a resumed run continues exactly."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ds_parrots.checkpoints.load import consolidated_state
from ds_parrots.training.checkpoint import is_complete
from helpers import REPO, cpu_env, results, run_train, shm_buffers, train_cmd

pytestmark = [pytest.mark.slow]

TINY = [
    "--task.book-size",
    "64",
    "--task.num-queries",
    "16",
    "--train.global-batch",
    "16",
    "--train.log-every",
    "1",
    "--train.no-progress",
    "--train.max-eval",
    "8",
    "--optim.lr",
    "3e-3",
    "--optim.warmup-frac",
    "0.0",
]


def run_with_fault(
    args: list[str], fault: str, nproc: int, timeout: int = 300
) -> subprocess.CompletedProcess:
    env = dict(cpu_env(), DS_PARROTS_FAULT=fault)
    return subprocess.run(
        train_cmd(args, nproc), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def latest(run_dir: Path) -> str:
    return (run_dir / "checkpoints" / "latest").read_text().strip()


def error_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.multirank
def test_sigkill_mid_run_and_during_save_then_resume_bit_for_bit(tmp_path):
    """2 ranks, MoE (AutoEP, ZeRO-3, expert-parallel 2): an uninterrupted run against one whose rank 1 is
    SIGKILLed between checkpoints, resumed, SIGKILLed again while writing the next checkpoint, resumed again."""
    args = [
        "phonebook",
        "--preset",
        "tiny-moe",
        "--moe.backend",
        "autoep",
        "--moe.ep-size",
        "2",
        "--train.zero-stage",
        "3",
        *TINY,
        "--train.steps",
        "10",
        "--train.save-every",
        "4",
        "--train.keep-last",
        "2",
        "--train.out-dir",
        str(tmp_path),
    ]
    shm_before = shm_buffers()
    run_train(args + ["--train.run-name", "clean"], nproc=2)
    clean = results(tmp_path / "clean")
    losses = [h["loss"] for h in clean["loss_history"]]
    assert losses[-1] < losses[0] - 0.3, losses
    assert clean["layout"]["world_size"] == 2 and clean["layout"]["local_experts_per_rank"] == [4, 4]

    run_dir = tmp_path / "faulty"
    faulty = args + ["--train.run-name", "faulty"]
    proc = run_with_fault(faulty, "sigkill@6:1", nproc=2)
    assert proc.returncode != 0
    assert latest(run_dir) == "step00000004" and is_complete(run_dir / "checkpoints" / "step00000004")
    assert not (run_dir / "results.json").exists()

    proc = run_with_fault(faulty + ["--train.resume"], "sigkill_in_save@8:1", nproc=2)
    assert proc.returncode != 0
    # Rank 1 died after writing its step-8 files: the checkpoint is not marked complete, `latest` did not move,
    # and step 4 still loads.
    assert (run_dir / "checkpoints" / "step00000008").is_dir()
    assert not is_complete(run_dir / "checkpoints" / "step00000008")
    assert latest(run_dir) == "step00000004"
    state, meta = consolidated_state(run_dir)
    assert meta["step"] == 4 and all(torch.isfinite(v).all() for v in state.values())

    run_train(faulty + ["--train.resume"], nproc=2)
    resumed = results(run_dir)
    assert [h["step"] for h in resumed["loss_history"]] == [5, 6, 7, 8, 9, 10]
    for key in ("loss", "aux_loss", "z_loss", "lr"):  # data order, schedule and routing: bit for bit
        assert [h[key] for h in resumed["loss_history"]] == [h[key] for h in clean["loss_history"][4:]], key
    assert resumed["metrics"] == clean["metrics"]
    for run in ("clean", "faulty"):  # --train.keep-last 2: the two newest complete checkpoints, no debris
        kept = sorted(p.name for p in (tmp_path / run / "checkpoints").glob("step*"))
        assert kept == ["step00000008", "step00000010"], (run, kept)
        assert all(is_complete(tmp_path / run / "checkpoints" / t) for t in kept)
    # DeepSpeed's CPU allreduce leaves a ~69 MB /dev/shm segment per rank; our shutdown removes it, and an
    # aborted run's surviving rank removes every rank's.
    assert shm_buffers() <= shm_before


@pytest.mark.multirank
def test_a_hung_rank_stops_the_others_with_its_rank_named(tmp_path):
    # MoE with expert parallelism: DeepSpeed's expert groups must get the timeout too, not torch's 30 minutes.
    args = [
        "phonebook",
        "--preset",
        "tiny-moe",
        "--moe.backend",
        "autoep",
        "--moe.ep-size",
        "2",
        *TINY,
        "--train.steps",
        "6",
        "--train.save-every",
        "2",
        "--train.collective-timeout",
        "5",
        "--train.out-dir",
        str(tmp_path),
        "--train.run-name",
        "run",
    ]
    # The subprocess timeout is the hang detector: without the collective timeout rank 0 would wait 30 minutes.
    proc = run_with_fault(args, "hang@3:1", nproc=2, timeout=240)
    assert proc.returncode != 0
    errors = error_lines(proc)
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "during step 3: rank 1 stopped responding" in errors[0]
    assert (
        "--train.collective-timeout=5" in errors[0]
        and "step00000002" in errors[0]
        and "--train.resume" in errors[0]
    )
    assert "Traceback" not in proc.stderr
    assert latest(tmp_path / "run") == "step00000002"


@pytest.mark.parametrize("zero_stage", ["0", "2", "3"])
def test_nonfinite_step_is_never_applied_and_skip_counts_it(zero_stage, tmp_path):
    """Stage 0: our AdamW's check of the gradient norm; stages 2 and 3: DeepSpeed's overflow check. Checkpoints
    every step show the weights after the NaN step equal those before it, and the learning rate stays the
    schedule's."""
    args = [
        "phonebook",
        "--preset",
        "tiny-dense",
        *TINY,
        "--train.steps",
        "5",
        "--train.save-every",
        "1",
        "--train.zero-stage",
        zero_stage,
        "--train.out-dir",
        str(tmp_path),
        "--train.run-name",
        "skip",
        "--train.on-nonfinite",
        "skip",
    ]
    proc = run_with_fault(args, "nan@3", nproc=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = results(tmp_path / "skip")
    assert out["nonfinite_steps"] == [3]
    assert [h.get("nonfinite", False) for h in out["loss_history"]] == [False, False, True, False, False]
    assert "warning: step 3: non-finite loss (rank 0 micro-batch 0)" in proc.stdout + proc.stderr
    weights = {
        s: consolidated_state(tmp_path / "skip" / "checkpoints" / f"step{s:08d}")[0] for s in (2, 3, 4)
    }
    assert all(torch.equal(weights[2][k], weights[3][k]) for k in weights[2])
    assert not all(torch.equal(weights[3][k], weights[4][k]) for k in weights[3])
    # Linear decay without warm-up over 5 steps: the rate after step s is 3e-3 * (1 - s / 5), skipped or not.
    assert [h["lr"] for h in out["loss_history"]] == pytest.approx([3e-3 * (1 - s / 5) for s in range(1, 6)])


def test_nonfinite_step_stops_the_run_naming_step_samples_and_checkpoint(tmp_path):
    args = [
        "phonebook",
        "--preset",
        "tiny-dense",
        *TINY,
        "--train.steps",
        "5",
        "--train.save-every",
        "2",
        "--train.zero-stage",
        "0",
        "--train.out-dir",
        str(tmp_path),
        "--train.run-name",
        "stop",
    ]
    proc = run_with_fault(args, "nan@3", nproc=1)
    assert proc.returncode == 1
    errors = error_lines(proc)
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "step 3: non-finite loss (rank 0 micro-batch 0); the update was not applied" in errors[0]
    assert "samples 32...47" in errors[0]  # step 3 of a global batch of 16
    assert str(tmp_path / "stop" / "checkpoints" / "step00000002") in errors[0]
    assert "--train.on-nonfinite skip" in errors[0]
    assert latest(tmp_path / "stop") == "step00000002" and not (tmp_path / "stop" / "results.json").exists()


def test_checkpoint_write_failing_as_on_a_full_disk_keeps_the_previous_one(tmp_path):
    """A real short write: the process may not write files over 200 kB (RLIMIT_FSIZE, SIGXFSZ ignored), as a
    full disk stops a write midway; the optimizer-state file of the next checkpoint is larger than that."""
    args = [
        "phonebook",
        "--preset",
        "tiny-dense",
        *TINY,
        "--train.save-every",
        "2",
        "--train.out-dir",
        str(tmp_path),
        "--train.run-name",
        "run",
    ]
    run_train(args + ["--train.steps", "4"])
    limited = [
        sys.executable,
        "-c",
        "import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
        " resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000)); os.execv(sys.argv[1], sys.argv[1:])",
        *train_cmd(args + ["--train.steps", "6", "--train.resume"]),
    ]
    proc = subprocess.run(limited, cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    errors = error_lines(proc)
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "could not write checkpoint" in errors[0] and "step00000006" in errors[0]
    assert "step00000004 is intact and 'latest' still names it" in errors[0] and "--train.resume" in errors[0]
    assert latest(tmp_path / "run") == "step00000004"
    assert not (tmp_path / "run" / "checkpoints" / "step00000006").exists()  # its partial files were removed
    assert consolidated_state(tmp_path / "run")[1]["step"] == 4


def test_unwritable_output_directory_is_refused_before_launch(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    args = [
        "phonebook",
        "--preset",
        "tiny-dense",
        *TINY,
        "--train.steps",
        "2",
        "--train.out-dir",
        str(blocker / "runs"),
    ]
    proc = run_train(args, check=False)
    assert proc.returncode == 2
    errors = error_lines(proc)
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert errors[0].startswith(f"error: cannot create the run directory {blocker / 'runs'}")
    assert f"{blocker} is a file" in errors[0] and "--train.out-dir" in errors[0]
    assert blocker.read_text() == "not a directory"
