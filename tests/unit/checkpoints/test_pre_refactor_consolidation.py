"""Run directories written by the code before the architecture refactor still consolidate to the same tensors
(tests/fixtures/pre_refactor_runs/README.md says how they were made; resuming them is checked in
tests/integration/checkpoints/test_pre_refactor_resume.py)."""

import hashlib
import json

import pytest

from helpers import REPO

FIXTURES = REPO / "tests" / "fixtures" / "pre_refactor_runs"
RUNS = {"autoep-ep2": 2, "native-1rank": 1, "dense-z3": 1}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_old_run_consolidates_to_the_same_tensors(tmp_path, name):
    from safetensors.torch import load_file

    from ds_parrots.cli.main import main

    out = tmp_path / "model.safetensors"
    assert main(["consolidate", str(FIXTURES / name), "--out", str(out)]) == 0
    got = {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in load_file(out).items()}
    assert got == json.loads((FIXTURES / "consolidated_sha256.json").read_text())[name]
