"""The command line: --help documents every flag, and bad input is one line on stderr, exit 2,
no traceback, nothing written."""

import subprocess
import sys

import pytest

from helpers import REPO, TRAIN, cpu_env

pytestmark = [pytest.mark.slow]


def run(args, **kw):
    return subprocess.run(
        [sys.executable, TRAIN, *args],
        cwd=REPO,
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["phonebook", "--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
        (
            ["phonebook", "--model.d-model", "100", "--model.n-heads", "3"],
            "not divisible by --model.n-heads=3",
        ),
        (["phonebook", "--model.num-experts", "6", "--moe.ep-size", "4"], "not divisible by --moe.ep-size=4"),
        (
            ["phonebook", "--preset", "tiny-moe", "--moe.backend", "native", "--train.zero-stage", "3"],
            "native MoE backend does not run under ZeRO-3",
        ),
        (["phonebook", "--preset", "tiny-moe", "--train.resume"], "no checkpoint in"),
        (["phonebook", "--train.global-batch", "10", "--train.micro-batch", "4"], "is not a multiple"),
        (["phonebook", "--task.book-size", "0"], "book_size=0"),
    ],
)
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    proc = run(args + ["--train.out-dir", str(tmp_path / "runs")])
    assert proc.returncode == 2, proc.stderr
    err_lines = [l for l in proc.stderr.splitlines() if l.strip() and "real_accelerator" not in l]
    assert len(err_lines) == 1, proc.stderr
    assert message in err_lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("task", ["phonebook", "shortest-path", "two-hop"])
def test_help_documents_every_flag(task):
    proc = run([task, "--help"])
    assert proc.returncode == 0
    text = proc.stdout
    for flag in (
        "--preset",
        "--model.num-experts",
        "--moe.backend",
        "--moe.aux-loss-coef",
        "--moe.z-loss-coef",
        "--train.zero-stage",
        "--train.micro-batch",
        "--train.global-batch",
        "--optim.warmup-frac",
        "--train.resume",
        "--train.save-every",
    ):
        assert flag in text, flag
    # tyro prints a field's docstring as its help; a flag without one shows only its type and default.
    assert "Expert-parallel size" in text and "ZeRO stage" in text


def test_console_script_lists_presets():
    proc = subprocess.run(
        [sys.executable, "-m", "ds_parrots.cli", "presets"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    for name in ("synthetic-d256-e8", "synthetic-d1024-dense", "paper-dense-d4096", "paper-moe-d512-e64"):
        assert name in proc.stdout


def test_run_dir_is_never_overwritten_nor_resumed_under_another_config(tmp_path):
    base = [
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
        "2",
        "--train.no-progress",
        "--train.out-dir",
        str(tmp_path),
        "--train.run-name",
        "r",
    ]
    first = run(base)
    assert first.returncode == 0, first.stderr
    ckpt = tmp_path / "r" / "checkpoints" / "step00000002"
    before = {p: p.stat().st_mtime_ns for p in ckpt.rglob("*")}

    again = run(base)  # same name, no --train.resume: refused, checkpoint untouched
    assert again.returncode == 2 and "already holds checkpoint step00000002" in again.stderr
    assert "Traceback" not in again.stderr

    other = run(base + ["--train.resume", "--optim.lr", "0.5"])  # a different experiment from this checkpoint
    assert other.returncode == 2, other.stderr
    assert "optim.lr: 0.001 -> 0.5" in other.stderr and "Traceback" not in other.stderr

    longer = run(base + ["--train.resume", "--train.steps", "3"])  # longer is allowed
    assert longer.returncode == 0, longer.stderr
    assert {p: p.stat().st_mtime_ns for p in ckpt.rglob("*")} == before
    assert (tmp_path / "r" / "checkpoints" / "latest").read_text().strip() == "step00000003"


def test_checkpoint_and_eval_commands_document_every_flag():
    import dataclasses

    from tyro._docstrings import get_field_docstring

    from ds_parrots.cli.consolidate import ConsolidateArgs
    from ds_parrots.cli.export_hf import ExportArgs
    from ds_parrots.cli.reproduce import ReproduceArgs
    from ds_parrots_eval.cli import EvalArgs, GapArgs
    from ds_parrots_eval.plot import PlotArgs

    for cls in (ConsolidateArgs, ExportArgs, EvalArgs, GapArgs, ReproduceArgs, PlotArgs):
        assert [f.name for f in dataclasses.fields(cls) if not get_field_docstring(cls, f.name, ())] == [], (
            cls
        )
    for args in (["consolidate", "--help"], ["export-hf", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ds_parrots.cli", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0 and "--out" in proc.stdout and "--overwrite" in proc.stdout
    for args in (["--help"], ["gap", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ds_parrots_eval.cli", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0 and "--bench-dir" in proc.stdout, proc.stdout


def test_reproduce_and_plot_help():
    proc = subprocess.run(
        [sys.executable, "-m", "ds_parrots.cli", "reproduce", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "--scale" in proc.stdout and "bisection" in proc.stdout, proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "ds_parrots_eval.cli", "plot", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "--out" in proc.stdout and "phonebook_capacity.png" in proc.stdout, (
        proc.stdout
    )
