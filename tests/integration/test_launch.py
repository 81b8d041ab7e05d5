"""The launch scripts: a real 2-rank CPU training through launch/single_node.sh, and the SLURM and
multi-node scripts in dry run (they print the topology and the deepspeed commands they would run)."""

import os
import stat
import subprocess
import sys

import pytest

from helpers import REPO, cpu_env, free_port, results

pytestmark = [pytest.mark.slow]

LAUNCH = REPO / "launch"
TINY_MOE = [
    "two-hop",
    "--preset",
    "tiny-moe",
    "--moe.ep-size",
    "8",
    "--train.global-batch",
    "32",
    "--train.micro-batch",
    "2",
]


def launch_env(**extra) -> dict:
    env = cpu_env()
    env.update(DS_PARROTS_PYTHON=sys.executable, DS_PARROTS_MASTER_PORT=str(free_port()), **extra)
    return env


def run_script(cmd, env, cwd=REPO, timeout=120):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def dry_lines(stdout):
    return [line for line in stdout.splitlines() if line.startswith("dry run: ")]


def test_scripts_are_executable():
    for name in ("single_node.sh", "multi_node.sh", "slurm.sbatch"):
        assert os.stat(LAUNCH / name).st_mode & stat.S_IXUSR, name


@pytest.mark.multirank
def test_single_node_trains_two_ranks(tmp_path):
    args = [
        "two-hop",
        "--preset",
        "tiny-dense",
        "--task.num-train",
        "20",
        "--task.num-test",
        "2",
        "--train.steps",
        "2",
        "--train.global-batch",
        "2",
        "--train.micro-batch",
        "1",
        "--train.no-progress",
        "--train.out-dir",
        str(tmp_path),
        "--train.run-name",
        "run",
    ]
    proc = run_script([str(LAUNCH / "single_node.sh"), "2", *args], launch_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (
        "topology: 1 node x 2 GPUs = world 2; expert-parallel 1 (dense); data-parallel 2; micro batch 1 x "
        "accumulation 1 x 2 ranks = global 2"
    ) in proc.stdout
    assert results(tmp_path / "run")["summary"]


def without_scontrol(tmp_path) -> str:
    """PATH with no scontrol on it: a folder that holds one (e.g. /usr/bin where SLURM is installed) is
    replaced by a copy made of links to everything else in it."""
    dirs = []
    for i, d in enumerate(os.environ["PATH"].split(os.pathsep)):
        if not os.path.exists(os.path.join(d, "scontrol")):
            dirs.append(d)
            continue
        mirror = tmp_path / f"path{i}"
        mirror.mkdir(exist_ok=True)
        for name in os.listdir(d):
            if name != "scontrol" and not (mirror / name).exists():
                (mirror / name).symlink_to(os.path.join(d, name))
        dirs.append(str(mirror))
    return os.pathsep.join(dirs)


def test_slurm_dry_run_starts_this_node_with_its_rank(tmp_path):
    env = launch_env(
        SLURM_JOB_NODELIST="node[1-2]",
        SLURM_NODEID="1",
        SLURM_GPUS_ON_NODE="4",
        DS_PARROTS_DRY_RUN="1",
        PATH=without_scontrol(tmp_path),
        SLURM_CPUS_PER_TASK="16",
    )
    # Run from elsewhere, as SLURM does: the script must still find the repository.
    proc = run_script(["bash", str(LAUNCH / "slurm.sbatch"), *TINY_MOE], env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        "topology: 2 nodes x 4 GPUs = world 8; expert-parallel 8 (8 experts, 1 per rank); data-parallel 8 "
        "(expert data-parallel 1)"
    ) in proc.stdout
    srun, deepspeed = dry_lines(proc.stdout)
    assert srun.startswith("dry run: srun --cpus-per-task 16 --nodes 2 --ntasks-per-node 1 ")
    assert srun.endswith(f"bash {LAUNCH / 'slurm.sbatch'} " + " ".join(TINY_MOE))
    assert " --no_ssh --node_rank 1 --master_addr node1 " in deepspeed
    assert deepspeed.endswith(f"{REPO / 'ds_parrots' / 'train.py'} " + " ".join(TINY_MOE))


def test_slurm_uses_scontrol_when_installed(tmp_path):
    # A stand-in for the scontrol this machine lacks: the script must take its host order.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\nprintf 'beta\\nalpha\\n'\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = launch_env(
        SLURM_JOB_NODELIST="alpha,beta",
        SLURM_NODEID="0",
        DS_PARROTS_DRY_RUN="1",
        PATH=f"{bin_dir}{os.pathsep}{without_scontrol(tmp_path)}",
    )
    proc = run_script(
        [
            "bash",
            str(LAUNCH / "slurm.sbatch"),
            "two-hop",
            "--train.global-batch",
            "16",
            "--train.micro-batch",
            "1",
        ],
        env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "topology: 2 nodes x 8 GPUs = world 16" in proc.stdout
    assert " --node_rank 0 --master_addr beta " in dry_lines(proc.stdout)[1]


def test_multi_node_dry_run_uses_first_host_as_master():
    proc = run_script(
        [str(LAUNCH / "multi_node.sh"), "launch/hostfile.example", *TINY_MOE],
        launch_env(DS_PARROTS_DRY_RUN="1"),
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "topology: 2 nodes x 8 GPUs = world 16; expert-parallel 8 (8 experts, 1 per rank); data-parallel 16 "
        "(expert data-parallel 2); micro batch 2 x accumulation 1 x 16 ranks = global 32"
    ) in proc.stdout
    (line,) = dry_lines(proc.stdout)
    assert line.startswith("dry run: deepspeed --hostfile launch/hostfile.example --master_addr worker-1 ")
    assert "--no_ssh" not in line


@pytest.mark.multirank
def test_multi_node_without_ssh_trains_and_exports_deepspeed_env(tmp_path):
    # The --no_ssh form for real, on a one-node hostfile: this node starts its own 2 ranks, with the
    # variables of ./.deepspeed_env exported (DeepSpeed's launcher logs the NCCL ones it hands the ranks).
    (tmp_path / "hostfile").write_text("localhost slots=2\n")
    (tmp_path / ".deepspeed_env").write_text("NCCL_DEBUG=WARN\n")
    env = launch_env(DS_PARROTS_NODE_RANK="0", DS_PARROTS_MASTER_ADDR="127.0.0.1")
    env.pop("NCCL_DEBUG", None)
    args = [
        "two-hop",
        "--preset",
        "tiny-moe",
        "--moe.ep-size",
        "2",
        "--task.num-train",
        "20",
        "--task.num-test",
        "2",
        "--train.steps",
        "2",
        "--train.global-batch",
        "2",
        "--train.micro-batch",
        "1",
        "--train.no-progress",
        "--train.out-dir",
        str(tmp_path),
        "--train.run-name",
        "run",
    ]
    proc = run_script([str(LAUNCH / "multi_node.sh"), "hostfile", *args], env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "topology: 1 node x 2 GPUs = world 2; expert-parallel 2 (8 experts, 4 per rank)" in proc.stdout
    # DeepSpeed hands --node_rank on to its per-node launcher only in the --no_ssh form.
    assert (
        "deepspeed.launcher.launch" in proc.stdout + proc.stderr
        and "--node_rank=0" in proc.stdout + proc.stderr
    )
    assert "NCCL_DEBUG=WARN" in proc.stdout + proc.stderr
    assert results(tmp_path / "run")["summary"]


@pytest.mark.parametrize(
    "cmd,message",
    [
        (["single_node.sh"], "usage: "),
        (["single_node.sh", "0", "two-hop"], "N_GPUS '0' is not a positive integer"),
        (["multi_node.sh", "launch/hostfile.example"], "usage: "),
        (["slurm.sbatch"], "usage: "),
    ],
)
def test_bad_arguments_print_usage(cmd, message):
    env = launch_env(SLURM_JOB_NODELIST="node1")
    proc = run_script(["bash", str(LAUNCH / cmd[0]), *cmd[1:]], env)
    assert proc.returncode == 2
    assert message in proc.stderr and "topology" not in proc.stdout


def test_bad_topology_stops_the_launch():
    proc = run_script([str(LAUNCH / "single_node.sh"), "3", *TINY_MOE], launch_env(DS_PARROTS_DRY_RUN="1"))
    assert proc.returncode == 2
    assert "error: --moe.ep-size=8 does not divide the world size 3" in proc.stderr
    assert not dry_lines(proc.stdout)


def test_bash_parses_every_script():
    for name in ("common.sh", "single_node.sh", "multi_node.sh", "slurm.sbatch"):
        proc = subprocess.run(["bash", "-n", str(LAUNCH / name)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
