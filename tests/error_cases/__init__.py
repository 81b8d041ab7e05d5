"""The bad-input catalogue (docs/errors.md): every kind of user-supplied input, tried with malformed values, gives
one line `error: ...` naming the input and the fix, exit code 2, no traceback, and writes nothing.

CASES is every case, in the order of the docs' sections; tests/integration/bad_inputs/ runs them."""

from error_cases import checkpoints, data, train
from error_cases.catalogue import SECTIONS

CASES = [c for kind in SECTIONS for c in train.CASES + data.CASES + checkpoints.CASES if c.kind == kind]
