"""Token files in Megatron-LM's memory-mapped indexed format: `<prefix>.bin` and `<prefix>.idx`.

The layout is exactly Megatron-LM's (megatron/core/datasets/indexed_dataset.py, `_IndexWriter`), so a
corpus tokenized by Megatron-LM / Megatron-DeepSpeed opens here and ours opens there:

    .bin  the tokens of every sequence, concatenated, in the index's dtype (little-endian)
    .idx  magic b"MMIDIDX\x00\x00" (9 bytes), version <Q == 1, dtype code <B,
          sequence count n <Q, document count d <Q            (34 bytes of header)
          sequence_lengths  int32[n]   tokens per sequence
          sequence_pointers int64[n]   byte offset of each sequence in .bin
          document_indices  int64[d]   sequence index where each document starts, then n

Each of our documents is one sequence, so we write document_indices = [0, 1, ..., n], as Megatron's
builder does for text that is not split into sentences. Files from Megatron with several sequences per
document open too: a sequence is then the unit of `__len__` / `__getitem__`.

Opening maps the files and never loads an array, so RAM stays O(1) in the corpus size; the optional
pointer check reads the index in fixed-size chunks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ds_parrots.data.file_checks import require_file
from ds_parrots.data.index_format import AGAIN, CHUNK, DTYPE_CODES, HEADER, MAGIC, VERSION, paths_of
from ds_parrots.errors import DataError


class IndexedDataset:
    """A memory-mapped `<prefix>.bin` / `<prefix>.idx` pair, checked on open.

    Every array here is a view of the mapped files: `sizes`, `pointers` and `document_indices` of the
    .idx, `tokens` of the whole .bin. With verify=True the pointers are checked to tile the .bin exactly,
    reading the index in chunks of CHUNK sequences.
    """

    def __init__(self, prefix: str | Path, verify: bool = True) -> None:
        self.bin_path, self.idx_path = paths_of(prefix)
        self._read_header()
        self._map_index()
        self._map_tokens()
        if verify:
            self._verify_pointers()

    def _read_header(self) -> None:
        idx = self.idx_path
        if not os.path.lexists(idx):
            tmp = Path(f"{idx}.tmp")
            found = f" ('{tmp.name}' is there: an interrupted prepare)" if tmp.exists() else ""
            raise DataError(
                f"token index '{idx}' does not exist{found}; an interrupted prepare leaves only *.tmp "
                f"files, which are never read; {AGAIN}"
            )
        require_file(idx, "token index")
        if not os.path.lexists(self.bin_path):
            raise DataError(
                f"token file '{self.bin_path}' does not exist beside its index '{idx.name}'; {AGAIN}"
            )
        require_file(self.bin_path, "token file")
        self._idx_size = idx.stat().st_size
        try:
            with open(idx, "rb") as f:
                head = f.read(HEADER.size)
        except OSError as e:
            raise DataError(
                f"token index '{idx}' cannot be read ({e.strerror}); check its permissions"
            ) from None
        # A file shorter than the magic that matches it so far is a truncated index, not a foreign one.
        if not head or not MAGIC.startswith(head[: len(MAGIC)]):
            raise DataError(
                f"'{idx}' is not a Megatron token index (bad magic {head[: len(MAGIC)]!r}, expected "
                f"{MAGIC!r}); pass the prefix of a .bin/.idx pair or {AGAIN}"
            )
        if len(head) < HEADER.size:
            raise DataError(
                f"'{idx}' is {len(head)} bytes, shorter than the {HEADER.size}-byte header "
                f"(truncated); {AGAIN}"
            )
        _, version, code, n, d = HEADER.unpack(head)
        if version != VERSION:
            raise DataError(
                f"'{idx}' has index version {version}; only version {VERSION} (Megatron's) is "
                f"supported; {AGAIN}"
            )
        if code not in DTYPE_CODES:
            raise DataError(
                f"'{idx}' has unknown dtype code {code} (known: {sorted(DTYPE_CODES)}); the file is "
                f"damaged or from another format; {AGAIN}"
            )
        self.dtype = np.dtype(DTYPE_CODES[code])
        self._n, self._d = n, d
        expected = HEADER.size + 4 * n + 8 * n + 8 * d
        if self._idx_size != expected:
            raise DataError(
                f"'{idx}' is {self._idx_size} bytes but its header ({n} sequences, {d} document "
                f"indices) implies {expected}: truncated or not a text token index; {AGAIN}"
            )

    def _map_index(self) -> None:
        n, d = self._n, self._d
        raw = np.memmap(self.idx_path, dtype=np.uint8, mode="r")
        at = HEADER.size
        self.sizes = raw[at : at + 4 * n].view("<i4")
        at += 4 * n
        self.pointers = raw[at : at + 8 * n].view("<i8")
        at += 8 * n
        self.document_indices = raw[at : at + 8 * d].view("<i8")
        if d < 1 or self.document_indices[0] != 0 or self.document_indices[-1] != n:
            first = int(self.document_indices[0]) if d else None
            last = int(self.document_indices[-1]) if d else None
            raise DataError(
                f"'{self.idx_path}' has document indices from {first} to {last}, expected 0 to the "
                f"sequence count {n}; the index is damaged; {AGAIN}"
            )

    def _map_tokens(self) -> None:
        itemsize = self.dtype.itemsize
        # The last sequence ends where the .bin must end; verify=True proves every other pointer agrees.
        self.num_tokens = 0 if self._n == 0 else int(self.pointers[-1]) // itemsize + int(self.sizes[-1])
        bin_size = self.bin_path.stat().st_size
        if bin_size != self.num_tokens * itemsize:
            raise DataError(
                f"'{self.bin_path}' is {bin_size} bytes but '{self.idx_path.name}' describes "
                f"{self.num_tokens} {self.dtype} tokens ({self.num_tokens * itemsize} bytes): truncated "
                f"or not the .bin of this index; {AGAIN}"
            )
        # numpy cannot map an empty file; an empty corpus has no tokens to view anyway.
        self.tokens = (
            np.memmap(self.bin_path, dtype=self.dtype.newbyteorder("<"), mode="r")
            if bin_size
            else np.empty(0, dtype=self.dtype)
        )

    def _verify_pointers(self) -> None:
        n, itemsize = self._n, self.dtype.itemsize
        sizes_at, pointers_at = HEADER.size, HEADER.size + 4 * n
        # pread, not the maps: pages touched through a map stay resident and count in RSS, so one pass
        # over a 60M-sequence index would add ~700 MB; read buffers are freed chunk by chunk.
        fd = os.open(self.idx_path, os.O_RDONLY)
        try:
            for i in range(0, n, CHUNK):
                # Chunks overlap by one sequence so the step across each boundary is checked too.
                count = min(CHUNK + 1, n - i)
                sizes = np.frombuffer(os.pread(fd, 4 * count, sizes_at + 4 * i), dtype="<i4").astype(np.int64)
                pointers = np.frombuffer(os.pread(fd, 8 * count, pointers_at + 8 * i), dtype="<i8")
                self._check_chunk(i, sizes, pointers, itemsize)
        finally:
            os.close(fd)

    def _check_chunk(self, first: int, sizes: np.ndarray, pointers: np.ndarray, itemsize: int) -> None:
        if first == 0 and pointers[0] != 0:
            raise DataError(
                f"'{self.idx_path}': sequence 0 starts at byte {int(pointers[0])}, not 0 (pointers "
                f"not contiguous); the index is damaged; {AGAIN}"
            )
        negative = np.flatnonzero(sizes < 0)
        if negative.size:
            j = int(negative[0])
            raise DataError(
                f"'{self.idx_path}': sequence {first + j} has negative length {int(sizes[j])}; the "
                f"index is damaged; {AGAIN}"
            )
        ends = pointers[:-1] + sizes[:-1] * itemsize
        bad = np.flatnonzero(pointers[1:] != ends)
        if bad.size:
            j = int(bad[0])
            raise DataError(
                f"'{self.idx_path}': sequence {first + j + 1} starts at byte {int(pointers[j + 1])} but "
                f"sequence {first + j} ends at byte {int(ends[j])} (pointers not contiguous); the index "
                f"is damaged; {AGAIN}"
            )

    @property
    def num_documents(self) -> int:
        return self._d - 1

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> np.ndarray:
        """Tokens of sequence i, a view into the mapped .bin (no copy)."""
        n = self._n
        if not -n <= i < n:
            raise IndexError(f"sequence {i} out of range for '{self.bin_path}' with {n} sequences")
        i = int(i) % n
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self.tokens[start : start + int(self.sizes[i])]

    def check_vocab(self, vocab_size: int) -> None:
        """Raise DataError unless this file's dtype holds every id below vocab_size."""
        if self.dtype.kind not in "iu":
            raise DataError(f"'{self.bin_path}' holds {self.dtype} values, not token ids; {AGAIN}")
        limit = np.iinfo(self.dtype).max
        if vocab_size - 1 > limit:
            raise DataError(
                f"'{self.bin_path}' stores {self.dtype} token ids (at most {limit}) but the tokenizer "
                f"has {vocab_size} tokens; it was prepared with another tokenizer: {AGAIN} with this one"
            )

    def __repr__(self) -> str:
        return (
            f"IndexedDataset('{self.bin_path}', {self._n} sequences, {self.num_documents} documents, "
            f"{self.num_tokens} {self.dtype} tokens)"
        )


# The writer lives in its own file; importing it from here keeps `from ds_parrots.data.indexed import
# IndexedWriter, dtype_for_vocab` working for callers and scripts.
from ds_parrots.data.index_format import dtype_for_vocab  # noqa: E402, F401
from ds_parrots.data.indexed_writer import IndexedWriter  # noqa: E402, F401
