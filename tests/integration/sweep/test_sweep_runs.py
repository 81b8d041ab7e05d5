"""`ds-parrots sweep`: --run really trains (then skips what is done), the emitted SLURM jobs run under
launch/slurm.sbatch's dry run, and bad input on the command line is one line."""

import json
import shlex
import subprocess
import sys

import pytest

from ds_parrots.cli.sweep import main
from ds_parrots.cli.train import PhonebookRun, PretrainRun, ShortestPathRun
from helpers import REPO, cpu_env

pytestmark = [pytest.mark.slow]

SUBCOMMAND_TYPES = {"phonebook": PhonebookRun, "shortest-path": ShortestPathRun, "pretrain": PretrainRun}


def test_run_trains_reports_failures_then_skips_what_is_done(tmp_path, capsys):
    out, runs_dir = tmp_path / "sweep", tmp_path / "runs"
    argv = ["smoke", "--run", "--filter", "book_size=40", "--out", str(out), "--out-dir", str(runs_dir)]
    runs_dir.mkdir()
    (runs_dir / "phonebook-n40-tiny-dense").write_text("not a directory")  # this run cannot start
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert (
        "phonebook-n40-tiny-dense: FAILED" in printed
        and "1 trained, 0 skipped (done before), 1 failed" in printed
    )
    assert (
        runs_dir / "phonebook-n40-tiny-moe" / "results.json"
    ).is_file()  # the sweep went on after the failure

    (runs_dir / "phonebook-n40-tiny-dense").unlink()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 trained, 1 skipped (done before), 0 failed" in printed
    manifest = {e["name"]: e for e in json.loads((out / "manifest.json").read_text())["runs"]}
    for name, entry in manifest.items():
        results = json.loads((runs_dir / name / "results.json").read_text())
        assert results["step"] == 3
        assert {k: results["params"][k] for k in ("total", "active")} == entry["params"]

    stamps = {name: (runs_dir / name / "results.json").stat().st_mtime_ns for name in manifest}
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count(": skipped,") == 2 and "0 trained, 2 skipped" in printed
    assert stamps == {name: (runs_dir / name / "results.json").stat().st_mtime_ns for name in manifest}


def slurm_dry_run(script):
    """The emitted job under launch/slurm.sbatch's own dry run, on a pretend one-node allocation."""
    env = dict(
        cpu_env(),
        SLURM_JOB_NODELIST="node1",
        SLURM_GPUS_ON_NODE="1",
        SLURM_NODEID="0",
        DS_PARROTS_DRY_RUN="1",
    )
    return subprocess.run(
        ["bash", str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_emit_slurm_writes_one_job_per_run(tmp_path, capsys):
    out, runs_dir = tmp_path / "sweep", tmp_path / "runs"
    assert (
        main(
            [
                "smoke",
                "--emit",
                "slurm",
                "--out",
                str(out),
                "--out-dir",
                str(runs_dir),
                "--sbatch",
                "partition=gpu",
            ]
        )
        == 0
    )
    capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())["runs"]
    jobs = sorted((out / "slurm").glob("*.sbatch"))
    assert [j.stem for j in jobs] == sorted(e["name"] for e in manifest)
    submit = (out / "slurm" / "submit_all.sh").read_text()
    for entry in manifest:
        job = (out / "slurm" / f"{entry['name']}.sbatch").read_text()
        assert shlex.join(entry["args"]) in job and "#SBATCH --partition=gpu" in job
        assert f"#SBATCH --job-name={entry['name']}" in job and f"{entry['name']}.sbatch" in submit
    proc = slurm_dry_run(jobs[0])
    assert proc.returncode == 0, proc.stderr
    assert shlex.join(json.loads((out / "manifest.json").read_text())["runs"][0]["args"]) in proc.stdout


def test_slurm_job_skips_a_finished_run_and_resumes_a_started_one(tmp_path, capsys):
    out, runs_dir = tmp_path / "sweep", tmp_path / "runs"
    assert (
        main(
            [
                "smoke",
                "--emit",
                "slurm",
                "--filter",
                "book_size=40",
                "--out",
                str(out),
                "--out-dir",
                str(runs_dir),
            ]
        )
        == 0
    )
    capsys.readouterr()
    done, started = runs_dir / "phonebook-n40-tiny-dense", runs_dir / "phonebook-n40-tiny-moe"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    (started / "checkpoints" / "step00000002").mkdir(parents=True)
    (started / "checkpoints" / "latest").write_text("step00000002")
    proc = slurm_dry_run(out / "slurm" / f"{done.name}.sbatch")
    assert proc.returncode == 0 and "nothing to do" in proc.stdout and "srun" not in proc.stdout
    proc = slurm_dry_run(out / "slurm" / f"{started.name}.sbatch")
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stdout.splitlines() if line.startswith("dry run: srun")][0].endswith(
        "--train.resume"
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["no-such-grid"], "unknown grid 'no-such-grid'; choose one of synthetic-phonebook"),
        (
            ["synthetic-phonebook", "--filter", "depth=3"],
            "--filter depth=3: synthetic-phonebook runs have no coordinate",
        ),
        (
            ["smoke", "--extra", "--train.stepz 3"],
            "run phonebook-n40-tiny-dense: train.py rejects the flags: Unrecognized options: --train.stepz",
        ),
        (["smoke", "--extra", "--task.book-size 10"], "--extra sets --task.book-size, which the grid sets"),
    ],
)
def test_bad_input_is_one_line(args, message, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ds_parrots.cli", "sweep", *args, "--out", str(tmp_path / "sweep")],
        cwd=REPO,
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "real_accelerator" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "sweep").exists()
