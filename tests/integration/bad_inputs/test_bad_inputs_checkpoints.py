"""The bad-input catalogue (docs/errors.md), checkpoint cases: damaged or mismatched checkpoints, and untrusted
ones whose pickled payload (`os.system("touch pwned")`) must be refused unexecuted, by the commands' main
functions and by the real console scripts."""

import pytest
import torch

from error_cases.catalogue import _NOISE, REPO, check_case, write_run
from error_cases.checkpoints import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, assets, capsys, monkeypatch):
    check_case(case, tmp_path, assets, capsys, monkeypatch)


@pytest.mark.slow
def test_the_console_scripts_print_the_same_one_line(tmp_path):
    """The real entry points (not only their main functions): exit code 2, one line, payload not run."""
    import subprocess
    import sys

    from helpers import cpu_env

    write_run(tmp_path / "run", payload=True)
    for cmd in (
        [
            sys.executable,
            "-m",
            "ds_parrots.cli",
            "consolidate",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "m.safetensors"),
        ],
        [sys.executable, str(REPO / "eval" / "cli.py"), str(tmp_path / "run")],
    ):
        proc = subprocess.run(cmd, cwd=tmp_path, env=cpu_env(), capture_output=True, text=True, timeout=120)
        lines = [l for l in proc.stderr.splitlines() if l.strip() and not _NOISE.match(l)]
        assert proc.returncode == 2 and len(lines) == 1 and "weights_only=True" in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_the_payload_is_live(tmp_path):
    """The planted checkpoint does run code when unpickled with weights_only=False (what DeepSpeed's
    engine.load_checkpoint does), so the refusals above are what keeps it from running."""
    write_run(tmp_path / "run", payload=True)
    torch.load(next((tmp_path / "run").rglob("*.pt")), weights_only=False)
    assert (tmp_path / "pwned").exists()
