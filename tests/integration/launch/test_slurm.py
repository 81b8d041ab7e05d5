"""launch/slurm.sbatch under a real one-node SLURM (slurm-wlm: munged, slurmctld, slurmd; 2 CPUs, no GPUs, no
cgroups; tests/slurm_cluster.py): a 2-rank CPU run submitted as a user would, preempted by SIGUSR1 (what
--signal=B:USR1@120 sends before the time limit), by the time-limit warning itself, and cancelled. Each preempted
run saves a checkpoint at the step it was in, the job requeues itself and resumes with --train.resume; the
losses after the resume are those of the uninterrupted run. Skipped, with the reason, only where SLURM cannot
start (not installed, not root)."""

import re
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, free_port, results
from slurm_cluster import SlurmCluster, SlurmUnavailable

pytestmark = [pytest.mark.slow, pytest.mark.multirank]

SBATCH = str(REPO / "launch" / "slurm.sbatch")
STEPS = 300
# A job on its way: REQUEUED (and COMPLETING) between a requeue and the next PENDING.
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED")


def args(out: Path, steps: int = STEPS, *extra: str) -> list[str]:
    # The tiny run of tests/integration/training/test_preemption.py, on 2 ranks (expert-parallel 2).
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
        "r",
        "--optim.lr",
        "3e-3",
        "--train.zero-stage",
        "2",
        "--moe.ep-size",
        "2",
        *extra,
    ]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    folder.chmod(0o700)  # munged refuses a key or socket folder others can write to
    try:
        cluster = SlurmCluster.start(folder)
    except SlurmUnavailable as e:
        print(f"SLURM tests skipped: {e}")
        pytest.skip(f"SLURM cannot start here: {e}")
    yield cluster
    cluster.cmd(["scancel", "--user", "root"], check=False)
    killed = cluster.stop()
    assert not cluster.alive() and not killed, f"daemons left running or killed: {cluster.alive() or killed}"


class Job:
    def __init__(self, slurm: SlurmCluster, out: Path, sbatch_args: list[str], train_args: list[str], **env):
        self.slurm, self.out, self.port = slurm, out, str(free_port())
        self.log = out / "job.out"
        environ = dict(
            DS_PARROTS_PYTHON=sys.executable,
            DS_PARROTS_MASTER_PORT=self.port,
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
            **env,
        )
        self.id = slurm.sbatch(
            ["--ntasks-per-node=2", f"--output={self.log}", *sbatch_args, SBATCH, *train_args],
            cwd=REPO,
            env=environ,
        )

    def wait_for_training(self, timeout: float = 240) -> None:
        """Until the ranks have logged a step: they train, with their preemption handlers installed."""
        deadline = time.monotonic() + timeout
        while not any(re.match(r"step \d+/", line) for line in self.text().splitlines()):
            info = self.slurm.job(self.id)
            assert info.get("JobState") in ACTIVE, (info, self.text())
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.3)

    def finish(self, timeout: float = 300, restarts: int = 0) -> dict:
        """The job's final state, once it ended after `restarts` requeues or more."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.slurm.wait_done(self.id, max(1, deadline - time.monotonic()))
            if int(info.get("Restarts", 0)) >= restarts or time.monotonic() > deadline:
                return info
            time.sleep(0.5)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else "(no job log)"

    def leftover_shm(self) -> list[str]:
        return [p.name for p in Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{self.port}_*")]


def losses(run_dir: Path) -> list[float]:
    return [h["loss"] for h in results(run_dir)["loss_history"]]


def lines(text: str, start: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(start)]


@pytest.fixture(scope="module")
def uninterrupted(slurm, tmp_path_factory):
    """A 2-rank CPU run through launch/slurm.sbatch with nothing but --ntasks-per-node=2: it completes."""
    out = tmp_path_factory.mktemp("plain")
    job = Job(slurm, out, [], args(out))
    info = job.finish()
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), job.text()
    return job, losses(out / "r")


def test_a_cpu_only_run_completes_and_learns(uninterrupted):
    job, history = uninterrupted
    assert "topology: 1 node x 2 CPU ranks = world 2; expert-parallel 2 (8 experts, 4 per rank)" in job.text()
    assert len(history) == STEPS and history[-1] < history[0] - 1.0, history[:: STEPS // 10]
    assert not job.leftover_shm()


def test_usr1_checkpoints_requeues_and_resumes_bit_exactly(slurm, tmp_path, uninterrupted):
    # SIGUSR1 to the batch shell: what --signal=B:USR1@120 sends 120 s before the time limit.
    job = Job(slurm, tmp_path, [], args(tmp_path))
    job.wait_for_training()
    slurm.cmd(["scancel", "--signal=USR1", "--batch", str(job.id)])
    info = job.finish(restarts=1)
    text = job.text()
    assert (info["JobState"], info["ExitCode"], info["Restarts"]) == ("COMPLETED", "0:0", "1"), text
    (preempted,) = lines(text, "preempted at step ")
    step = int(preempted.split()[3])
    assert preempted == (
        f"preempted at step {step} (SIGUSR1); checkpoint step{step:08d} saved; resume with --train.resume"
    )
    assert f"slurm: preempted; job {job.id} requeued" in text
    assert lines(text, "slurm: ") and "resuming it (--train.resume)" in text
    assert losses(tmp_path / "r") == uninterrupted[1][step:]
    assert not job.leftover_shm()


def test_the_time_limit_warning_checkpoints_and_requeues(slurm, tmp_path):
    # A one-minute limit with its warning 59 s ahead: the USR1 comes at slurmctld's first time-limit check
    # (every 30 s), possibly while the ranks still start (the batch shell repeats it every 2 s until they stop).
    # The run is long enough never to finish first; its resume is checked bit-exact above, here that it happens.
    job = Job(
        slurm,
        tmp_path,
        ["--time=1", "--signal=B:USR1@59"],
        args(tmp_path, 100_000),
        DS_PARROTS_SIGNAL_REPEAT_S="2",
    )
    deadline = time.monotonic() + 240
    while int(slurm.job(job.id).get("Restarts", 0)) < 1:
        info = slurm.job(job.id)
        assert info.get("JobState") in ACTIVE, (info, job.text())
        assert time.monotonic() < deadline, job.text()
        time.sleep(0.5)
    # Requeued before the limit; the next run gets more time, so that no second warning races the checks.
    slurm.cmd(["scontrol", "update", f"JobId={job.id}", "TimeLimit=10"])
    (preempted,) = lines(job.text(), "preempted at step ")
    step = int(preempted.split()[3])
    assert preempted == (
        f"preempted at step {step} (SIGUSR1); checkpoint step{step:08d} saved; resume with --train.resume"
    )
    assert f"slurm: preempted; job {job.id} requeued" in job.text()
    while not lines(job.text(), "resumed from step "):
        info = slurm.job(job.id)
        assert info.get("JobState") in ACTIVE, (info, job.text())
        assert time.monotonic() < deadline, job.text()
        time.sleep(0.5)
    assert lines(job.text(), "resumed from step ")[0].startswith(f"resumed from step {step} ")
    assert [run["JobState"] for run in slurm.completions(job.id)] == ["PENDING"]  # requeued, not TIMEOUT
    slurm.cmd(["scancel", str(job.id)])
    slurm.wait_done(job.id, 120)
    assert not job.leftover_shm()


def test_scancel_saves_a_checkpoint_and_leaves_no_shared_memory(slurm, tmp_path):
    # Plain scancel: SIGTERM to every process of the job, SIGKILL 30 s later. The ranks save and stop in time;
    # a cancelled job is not requeued, and submitting it again resumes it.
    job = Job(slurm, tmp_path, [], args(tmp_path))
    job.wait_for_training()
    slurm.cmd(["scancel", str(job.id)])
    info = job.finish()
    text = job.text()
    assert info["JobState"] == "CANCELLED" and info["Restarts"] == "0", text
    (preempted,) = lines(text, "preempted at step ")
    step = int(preempted.split()[3])
    assert "(SIGTERM)" in preempted
    ckpt = tmp_path / "r" / "checkpoints"
    assert (ckpt / "latest").read_text() == f"step{step:08d}"
    assert (ckpt / f"step{step:08d}" / "ds_parrots_complete.json").is_file()
    assert "slurm: preempted; checkpoint saved; submit the same command again to resume it" in text
    assert not job.leftover_shm()
