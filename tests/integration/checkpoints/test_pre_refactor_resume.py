"""Run directories written by the code before the architecture refactor still resume bit-exactly
(tests/fixtures/pre_refactor_runs/README.md says how they were made; their consolidation is checked in
tests/unit/checkpoints/test_pre_refactor_consolidation.py)."""

import json
import shutil
from pathlib import Path

import pytest

from helpers import REPO, run_train

pytestmark = [pytest.mark.slow]

FIXTURES = REPO / "tests" / "fixtures" / "pre_refactor_runs"
RUNS = {"autoep-ep2": 2, "native-1rank": 1, "dense-z3": 1}


def _command(name: str, out_dir: Path) -> list[str]:
    saved = json.loads((FIXTURES / name / "config.json").read_text())
    preset = "tiny-moe" if saved["model"]["num_experts"] > 1 else "tiny-dense"
    args = [
        "phonebook",
        "--preset",
        preset,
        "--model.d-model",
        "32",
        "--model.ffn-dim",
        "32",
        "--model.n-layers",
        "1",
        "--task.book-size",
        "40",
        "--train.steps",
        "6",
        "--train.global-batch",
        "8",
        "--train.save-every",
        "3",
        "--train.no-progress",
        "--train.out-dir",
        str(out_dir),
        "--optim.lr",
        "3e-3",
        "--train.zero-stage",
        str(saved["train"]["zero_stage"]),
        "--train.run-name",
        name,
    ]
    if saved["model"]["num_experts"] > 1:
        args += ["--moe.backend", saved["moe"]["backend"], "--moe.ep-size", str(saved["moe"]["ep_size"])]
    return args


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.multirank) if RUNS[n] > 1 else n for n in sorted(RUNS)]
)
def test_old_run_resumes_bit_exactly(tmp_path, name):
    shutil.copytree(FIXTURES / name, tmp_path / name)
    run_train(_command(name, tmp_path) + ["--train.resume"], nproc=RUNS[name])
    resumed = json.loads((tmp_path / name / "results.json").read_text())["loss_history"]
    expected = json.loads((FIXTURES / name / "expected_results.json").read_text())["loss_history"]
    assert [h["step"] for h in resumed] == [4, 5, 6]
    assert [h["loss"] for h in resumed] == [h["loss"] for h in expected[3:]]
