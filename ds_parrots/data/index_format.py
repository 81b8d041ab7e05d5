"""The Megatron-LM token-file format (the .idx header, its dtype codes) and the names of a pair of files: what
the writer and the reader share.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ds_parrots.errors import DataError

MAGIC = b"MMIDIDX\x00\x00"


VERSION = 1


HEADER = struct.Struct("<9sQBQQ")  # magic, version, dtype code, sequence count, document count


# Megatron-LM's DType enum. Codes 6 and 7 differ between forks (Megatron-DeepSpeed reads both as
# float64); token files only ever use the integer codes, on which every fork agrees.
DTYPE_CODES = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.float32,
    8: np.uint16,
}


CODE_OF = {np.dtype(t): code for code, t in DTYPE_CODES.items()}


# Sequences per chunk when reading the index back: ~30 MiB of RAM whatever the corpus size.
CHUNK = 1 << 20


AGAIN = "run 'ds-parrots prepare' again"


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """The smallest token dtype we write for this vocabulary: uint16 holds ids 0..65535, else int32.

    Megatron's builder already picks int32 from 65500 on, as a margin; ids are < vocab_size, so 65536
    fits uint16 exactly, and Megatron reads whichever dtype the header names.
    """
    if vocab_size < 1:
        raise DataError(f"vocab_size={vocab_size} must be >= 1")
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.int32)


def paths_of(prefix: str | Path) -> tuple[Path, Path]:
    """(.bin, .idx) paths of a prefix given as "x", "x.bin" or "x.idx"."""
    text = os.fspath(prefix)
    if text.endswith((".bin", ".idx")):
        text = text[:-4]
    return Path(text + ".bin"), Path(text + ".idx")


def checked_index_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype not in CODE_OF:
        ints = ", ".join(str(np.dtype(t)) for t in DTYPE_CODES.values() if np.dtype(t).kind in "iu")
        raise DataError(f"token dtype {dtype} cannot be stored in a Megatron index; use one of {ints}")
    return dtype


INT32_MAX = np.iinfo(np.int32).max
