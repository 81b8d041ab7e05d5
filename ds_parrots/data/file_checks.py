"""Checks of token files before launch: that a path is a readable regular file (with the cause when it is
not), and that a file's token ids fit the model."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from ds_parrots.errors import DataError

AGAIN = "run 'ds-parrots prepare' again"
# Tokens per file whose ids are checked before launch (2 MiB of uint16): reading a 63B-token corpus up front
# would take longer than many runs, while a file written with a dtype too small for its tokenizer shows wrapped
# ids within its first thousand tokens. The rest is checked batch by batch as it is read (CheckedBatches).
SCAN_TOKENS = 1 << 20


def require_file(path: Path, what: str) -> None:
    """Refuse a path that exists but is not a readable regular file, naming the cause: a directory, a symlink
    loop, a symlink to nothing, a device or pipe, no permission."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            why = "is a symlink loop"
        elif e.errno == errno.ENOENT:
            why = f"is a symlink to '{os.readlink(path)}', which does not exist"
        else:
            why = f"cannot be read ({e.strerror})"
        raise DataError(f"{what} '{path}' {why}; point the mixture at a .bin/.idx pair or {AGAIN}") from None
    if os.path.isdir(path):
        raise DataError(
            f"{what} '{path}' is a directory, not a file; give the prefix of a .bin/.idx pair (the mixture's "
            f"'path' without the suffix) or {AGAIN}"
        )
    if not os.path.isfile(path):
        raise DataError(f"{what} '{path}' is not a regular file (mode {st.st_mode:o}); {AGAIN}")
    if not os.access(path, os.R_OK):
        raise DataError(f"{what} '{path}' is not readable (permission denied); check its permissions")


def check_token_ids(bin_path: Path, tokens: np.ndarray, vocab_size: int, scan: int = SCAN_TOKENS) -> None:
    """Raise DataError if the first `scan` tokens hold an id that is negative (a signed dtype that wrapped: ids
    past int16's 32767 read back as negative) or not below vocab_size. Only a prefix: see SCAN_TOKENS."""
    head = np.asarray(tokens[:scan])
    if not head.size:
        return
    low, high = int(head.min()), int(head.max())
    if low < 0:
        at = int(np.argmax(head < 0))
        raise DataError(
            f"'{bin_path}' holds token id {low} (the first negative one at token {at}): {head.dtype} ids past "
            f"{np.iinfo(head.dtype).max} wrapped, a dtype too small for the tokenizer; {AGAIN} (it picks "
            "uint16 or int32 from the vocabulary size)"
        )
    if high >= vocab_size:
        raise DataError(
            f"'{bin_path}' holds token id {high}, which is >= --model.vocab-size={vocab_size}: the data was "
            "tokenized with a larger vocabulary; set --model.vocab-size to the tokenizer's size (or more)"
        )
