"""Run directories written by the code before the architecture refactor still resume bit-exactly and
consolidate to the same tensors (tests/fixtures/pre_refactor_runs/README.md says how they were made)."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from helpers import REPO, run_train

FIXTURES = REPO / "tests" / "fixtures" / "pre_refactor_runs"
RUNS = {"autoep-ep2": 2, "native-1rank": 1, "dense-z3": 1}


def _command(name: str, out_dir: Path) -> list[str]:
    saved = json.loads((FIXTURES / name / "config.json").read_text())
    preset = "tiny-moe" if saved["model"]["num_experts"] > 1 else "tiny-dense"
    args = ["phonebook", "--preset", preset, "--model.d-model", "32", "--model.ffn-dim", "32", "--model.n-layers",
            "1", "--task.book-size", "40", "--train.steps", "6", "--train.global-batch", "8", "--train.save-every",
            "3", "--train.no-progress", "--train.out-dir", str(out_dir), "--optim.lr", "3e-3",
            "--train.zero-stage", str(saved["train"]["zero_stage"]), "--train.run-name", name]
    if saved["model"]["num_experts"] > 1:
        args += ["--moe.backend", saved["moe"]["backend"], "--moe.ep-size", str(saved["moe"]["ep_size"])]
    return args


@pytest.mark.parametrize("name", sorted(RUNS))
def test_old_run_resumes_bit_exactly(tmp_path, name):
    shutil.copytree(FIXTURES / name, tmp_path / name)
    run_train(_command(name, tmp_path) + ["--train.resume"], nproc=RUNS[name])
    resumed = json.loads((tmp_path / name / "results.json").read_text())["loss_history"]
    expected = json.loads((FIXTURES / name / "expected_results.json").read_text())["loss_history"]
    assert [h["step"] for h in resumed] == [4, 5, 6]
    assert [h["loss"] for h in resumed] == [h["loss"] for h in expected[3:]]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_old_run_consolidates_to_the_same_tensors(tmp_path, name):
    from safetensors.torch import load_file

    from ds_parrots.cli.main import main

    out = tmp_path / "model.safetensors"
    assert main(["consolidate", str(FIXTURES / name), "--out", str(out)]) == 0
    got = {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in load_file(out).items()}
    assert got == json.loads((FIXTURES / "consolidated_sha256.json").read_text())[name]
