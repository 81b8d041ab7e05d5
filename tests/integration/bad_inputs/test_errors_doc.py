"""docs/errors.md lists every bad-input case, with the message each gives. Regenerate its tables with
DS_PARROTS_WRITE_ERRORS_DOC=1 python -m pytest tests/integration/bad_inputs: this file runs after the cases
(pytest runs the files of a folder in name order) and writes the messages they recorded."""

import os

from error_cases import CASES
from error_cases.catalogue import _TABLES, DOC, MESSAGES, SECTIONS, render_tables


def test_docs_list_every_case():
    assert {c.kind for c in CASES} == set(SECTIONS)
    assert len({c.id for c in CASES}) == len(CASES)
    if os.environ.get("DS_PARROTS_WRITE_ERRORS_DOC") and len(MESSAGES) == len(CASES):
        DOC.write_text(
            _TABLES.sub(
                lambda m: m.group(1) + "\n" + render_tables(CASES) + "\n" + m.group(2), DOC.read_text()
            )
        )
    text = DOC.read_text()
    missing = [c.id for c in CASES if f"`{c.id}`" not in text]
    assert missing == [], f"docs/errors.md lacks {missing}; regenerate it (see this file's docstring)"
