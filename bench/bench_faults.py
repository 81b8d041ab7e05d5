"""Faults injected into real training runs: what survives, what is lost, how long detection and recovery take.

    python bench/bench_faults.py [--nproc 2 --steps 12 --save-every 4 --collective-timeout 10]

Each scenario trains the same small MoE run (AutoEP, ZeRO-3, expert-parallel = --nproc) with a fault injected
through DS_PARROTS_FAULT (ds_parrots/faults.py), then resumes it with --train.resume until it finishes. The
baseline is the same run uninterrupted, measured in this invocation. Per scenario:

- detect: seconds from the fault (the injected process prints a line) until every process of the launch exited;
- lost: steps trained after the checkpoint the resume continued from (the newest that verifies), to be redone;
- resume: seconds from the relaunch to its first finished step (start-up + checkpoint load + one step);
- total / clean: wall time of the faulty launch plus its resumes, as a ratio to the uninterrupted run;
- exact: whether the resumed losses equal the uninterrupted run's bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

REPO = Path(__file__).resolve().parent.parent
TRAIN = REPO / "ds_parrots" / "train.py"


@dataclass
class Args:
    nproc: int = 2
    """Ranks per launch (the faults hit rank 1, so at least 2)."""
    steps: int = 12
    """Optimizer steps of the run."""
    save_every: int = 4
    """Checkpoint interval; the mid-run faults fall half-way between two checkpoints."""
    collective_timeout: float = 10.0
    """--train.collective-timeout of the runs: how long the survivors of a hung rank wait."""
    out_dir: Optional[str] = None
    """Where the runs go (default: a temporary directory, removed afterwards)."""


@dataclass
class Launch:
    rc: int
    seconds: float
    fault_at: Optional[float]
    """Seconds after start at which the fault line appeared."""
    first_step_at: Optional[float]
    """Seconds after start at which the first step was logged."""
    log: str


def launch(args: list[str], nproc: int, fault: str = "") -> Launch:
    from ds_parrots.parallel.process_group import free_port

    cmd = [
        sys.executable,
        "-m",
        "deepspeed.launcher.runner",
        "--num_gpus",
        str(nproc),
        "--master_port",
        str(free_port()),
        str(TRAIN),
        *args,
    ]
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore", DS_PARROTS_FAULT=fault
    )
    start = time.monotonic()
    fault_at = first_step_at = None
    lines = []
    with subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as p:
        for line in p.stdout:
            now = time.monotonic() - start
            lines.append(line)
            if fault_at is None and line.startswith("[fault injection]"):
                fault_at = now
            if first_step_at is None and line.startswith("step "):
                first_step_at = now
    return Launch(p.returncode, time.monotonic() - start, fault_at, first_step_at, "".join(lines))


CORRUPTED = "zero_pp_rank_1_mp_rank_00_optim_states.pt"


def flip_bytes(path: Path, n: int = 16) -> None:
    """Invert `n` bytes in the middle of a file, as a bad disk or a broken copy would."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + n] = bytes(b ^ 0xFF for b in data[middle : middle + n])
    path.write_bytes(bytes(data))


def history(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "results.json").read_text())["loss_history"]


def main(a: Args) -> None:
    from ds_parrots.training.checkpoint import latest_path

    root = Path(a.out_dir or tempfile.mkdtemp(prefix="bench_faults_"))
    common = [
        "phonebook",
        "--preset",
        "tiny-moe",
        "--moe.backend",
        "autoep",
        "--moe.ep-size",
        str(a.nproc),
        "--train.zero-stage",
        "3",
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
        "--train.steps",
        str(a.steps),
        "--train.save-every",
        str(a.save_every),
        "--train.collective-timeout",
        str(a.collective_timeout),
        "--train.out-dir",
        str(root),
    ]
    mid = a.save_every + a.save_every // 2
    second = 2 * a.save_every
    scenarios = {
        f"rank 1 SIGKILLed at step {mid}": f"sigkill@{mid}:1",
        f"rank 1 SIGKILLed while saving step {second}": f"sigkill_in_save@{second}:1",
        f"rank 1 hangs at step {mid}": f"hang@{mid}:1",
        f"NaN loss at step {mid}, --train.on-nonfinite stop": f"nan@{mid}",
        # Preemption: a real SIGTERM to rank 1 while step `mid` trains; every rank saves that step and exits 75.
        f"SIGTERM to rank 1 during step {mid} (preemption)": f"sigterm@{mid}:1",
        # The newest checkpoint fails verification (16 flipped bytes in rank 1's optimizer file): the resume
        # falls back to the one before it.
        f"checkpoint {second} corrupted, rank 1 SIGKILLed at step {second + a.save_every // 2}": (
            f"sigkill@{second + a.save_every // 2}:1"
        ),
    }
    corrupt = {f"sigkill@{second + a.save_every // 2}:1": second}
    from machine import describe  # bench/machine.py

    print(describe(), flush=True)
    print(
        f"uninterrupted baseline ({a.nproc} ranks, {a.steps} steps, checkpoint every {a.save_every}) ...",
        flush=True,
    )
    clean = launch(common + ["--train.run-name", "clean"], a.nproc)
    if clean.rc != 0:
        raise SystemExit(f"the baseline run failed:\n{clean.log[-3000:]}")
    reference = history(root / "clean")
    rows = []
    for i, (name, fault) in enumerate(scenarios.items()):
        print(f"{name} ...", flush=True)
        run = common + ["--train.run-name", f"fault{i}"]
        faulty = launch(run, a.nproc, fault)
        if fault in corrupt:
            flip_bytes(root / f"fault{i}" / "checkpoints" / f"step{corrupt[fault]:08d}" / CORRUPTED)
        tag = latest_path(root / f"fault{i}")
        saved = int(Path(tag).name[len("step") :]) if tag else 0
        fault_step = int(fault.split("@")[1].split(":")[0])
        resumed = launch(run + ["--train.resume"], a.nproc)
        if resumed.rc != 0:
            raise SystemExit(f"{name}: the resumed run failed:\n{resumed.log[-3000:]}")
        exact = history(root / f"fault{i}") == reference[saved:]
        detect = faulty.seconds - faulty.fault_at if faulty.fault_at is not None else float("nan")
        # A killed rank had finished its fault step, and a signalled one finishes it; a hung rank and a NaN
        # step had not.
        completed = fault_step if fault.startswith(("sigkill", "sigterm")) else fault_step - 1
        rows.append(
            (
                name,
                faulty.rc,
                detect,
                completed - saved,
                resumed.first_step_at,
                (faulty.seconds + resumed.seconds) / clean.seconds,
                exact,
            )
        )
    print(
        f"\nbaseline: {clean.seconds:.1f} s for {a.steps} steps, start-up included; its first step finished "
        f"{clean.first_step_at:.1f} s after launch\n"
    )
    print(
        "| fault | exit code | detect (s) | steps lost | resume to first step (s) | total / clean | exact |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, rc, detect, lost, first, ratio, exact in rows:
        shown = "same step" if detect != detect else f"{detect:.1f}"  # NaN: caught in the step it happens
        print(
            f"| {name} | {rc} | {shown} | {lost} | {first:.1f} | {ratio:.2f}x | {'yes' if exact else 'NO'} |"
        )
    if a.out_dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main(tyro.cli(Args, description=__doc__))
