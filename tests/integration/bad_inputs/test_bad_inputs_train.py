"""The bad-input catalogue (docs/errors.md), command-line cases: flags, hostfiles, sweeps and reproductions. Each
gives one line `error: ...` naming the input and the fix, exit code 2, no traceback, and writes nothing."""

import pytest

from error_cases.catalogue import check_case
from error_cases.train import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, assets, capsys, monkeypatch):
    check_case(case, tmp_path, assets, capsys, monkeypatch)
