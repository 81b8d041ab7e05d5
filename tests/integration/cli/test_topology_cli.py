"""`ds-parrots topology` as a command: it prints the topology a launch builds, and bad input is one line."""

import subprocess
import sys

import pytest

from helpers import REPO, cpu_env

pytestmark = [pytest.mark.slow]


def hostfile(tmp_path, text):
    path = tmp_path / "hostfile"
    path.write_text(text)
    return path


def topology(*args):
    return subprocess.run(
        [sys.executable, "-m", "ds_parrots.cli", "topology", *args],
        cwd=REPO,
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_prints_the_topology():
    proc = topology(
        "--num-nodes",
        "2",
        "--gpus-per-node",
        "8",
        "--",
        "phonebook",
        "--preset",
        "synthetic-d512-e64",
        "--moe.ep-size",
        "8",
        "--train.global-batch",
        "512",
        "--train.micro-batch",
        "8",
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "topology: 2 nodes x 8 GPUs = world 16; expert-parallel 8 (64 experts, 8 per rank); data-parallel 16 "
        "(expert data-parallel 2); micro batch 8 x accumulation 4 x 16 ranks = global 512"
    ) in proc.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--hostfile", "HOSTFILE", "--", "two-hop"], "line 2: 'worker-2 slots=' is not 'hostname slots=N'"),
        (
            [
                "--gpus-per-node",
                "6",
                "--",
                "two-hop",
                "--preset",
                "tiny-moe",
                "--moe.ep-size",
                "4",
                "--train.global-batch",
                "6",
                "--train.micro-batch",
                "1",
            ],
            "--moe.ep-size=4 does not divide the world size 6",
        ),
        (
            [
                "--gpus-per-node",
                "4",
                "--",
                "two-hop",
                "--preset",
                "tiny-moe",
                "--moe.ep-size",
                "4",
                "--model.num-experts",
                "6",
            ],
            "--model.num-experts=6 is not divisible by --moe.ep-size=4",
        ),
        (
            [
                "--num-nodes",
                "2",
                "--gpus-per-node",
                "8",
                "--",
                "two-hop",
                "--train.global-batch",
                "100",
                "--train.micro-batch",
                "4",
            ],
            "--train.global-batch=100 is not a multiple of --train.micro-batch=4 x 16 ranks",
        ),
        (["--", "two-hop"], "no machines given"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, args, message):
    bad = hostfile(tmp_path, "worker-1 slots=8\nworker-2 slots=\n")
    proc = topology(*[str(bad) if a == "HOSTFILE" else a for a in args])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "real_accelerator" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
