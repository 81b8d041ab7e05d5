"""Run the real CLI in subprocesses: one process, or 2 CPU ranks through the deepspeed launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ds_parrots.parallel.process_group import free_port  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parent.parent
TRAIN = str(REPO / "ds_parrots" / "train.py")


# Where torch.distributed rendezvous: ensure_process_group writes them into os.environ.
RENDEZVOUS_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def cpu_env() -> dict:
    env = dict(os.environ)
    # 2 ranks on 2 cores: one thread each, else they run 3-4x slower.
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore")
    # A rendezvous left in os.environ by a group inside the pytest process is not the child's.
    for name in RENDEZVOUS_VARS:
        env.pop(name, None)
    return env


def launch_cmd(script, args: list[str], nproc: int, launcher: bool = False) -> list[str]:
    """`python script args` for one process; the deepspeed launcher for more (or for one, with launcher)."""
    if nproc == 1 and not launcher:
        return [sys.executable, str(script), *args]
    return [
        sys.executable,
        "-m",
        "deepspeed.launcher.runner",
        "--num_gpus",
        str(nproc),
        "--master_port",
        str(free_port()),
        str(script),
        *args,
    ]


def train_cmd(args: list[str], nproc: int = 1) -> list[str]:
    return launch_cmd(TRAIN, args, nproc)


def run_dist_script(
    name: str, args: list[str], nproc: int = 2, timeout: int = 300
) -> subprocess.CompletedProcess:
    """tests/dist_scripts/<name> on `nproc` ranks through the deepspeed launcher; fails the test if it fails."""
    env = dict(cpu_env(), PYTHONPATH=str(REPO))
    proc = subprocess.run(
        launch_cmd(REPO / "tests" / "dist_scripts" / name, args, nproc, launcher=True),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    return proc


def run_train(args: list[str], nproc: int = 1, timeout: int = 600, check: bool = True):
    proc = subprocess.run(
        train_cmd(args, nproc), cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"training failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def results(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "results.json").read_text())


def resume_from(run_dir: Path, args: list[str], step: int, nproc: int) -> dict:
    """Pretend the run died after its checkpoint of `step`: point `latest` back at it, rerun the same
    command with --train.resume, and return the new results (their loss_history starts at step + 1)."""
    (Path(run_dir) / "checkpoints" / "latest").write_text(f"step{step:08d}")
    run_train(args + ["--train.resume"], nproc=nproc)
    return results(run_dir)


def shm_buffers() -> set:
    """DeepSpeed's CPU allreduce segments in /dev/shm (one of ~69 MB per rank): a clean shutdown removes them."""
    return {p.name for p in Path("/dev/shm").glob("deepspeed_allreduce_buffer_*")}
