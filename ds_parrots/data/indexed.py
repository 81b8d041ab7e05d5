"""Token files in Megatron-LM's memory-mapped indexed format: `<prefix>.bin` and `<prefix>.idx`.

The layout is exactly Megatron-LM's (megatron/core/datasets/indexed_dataset.py, `_IndexWriter`), so a
corpus tokenized by Megatron-LM / Megatron-DeepSpeed opens here and ours opens there:

    .bin  the tokens of every sequence, concatenated, in the index's dtype (little-endian)
    .idx  magic b"MMIDIDX\\x00\\x00" (9 bytes), version <Q == 1, dtype code <B,
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
import shutil
import struct
from pathlib import Path

import numpy as np

from ds_parrots.data.file_checks import require_file
from ds_parrots.errors import DataError
from ds_parrots.fileio import fsync, replace

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
INT32_MAX = np.iinfo(np.int32).max
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


def _token_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype not in CODE_OF:
        ints = ", ".join(str(np.dtype(t)) for t in DTYPE_CODES.values() if np.dtype(t).kind in "iu")
        raise DataError(f"token dtype {dtype} cannot be stored in a Megatron index; use one of {ints}")
    return dtype


class IndexedWriter:
    """Writes one `<prefix>.bin` / `<prefix>.idx` pair, atomically.

    Everything goes to `<prefix>.bin.tmp` / `<prefix>.idx.tmp` first; `finalize` renames the .bin and
    then the .idx, so an .idx on disk always means its .bin is complete. The sequence lengths are
    streamed into the .idx.tmp as documents arrive and the header is written last, so the writer holds
    no per-document state in RAM.
    """

    def __init__(self, prefix: str | Path, dtype: np.dtype) -> None:
        self.dtype = _token_dtype(dtype)
        self.bin_path, self.idx_path = paths_of(prefix)
        self._bin_tmp = Path(f"{self.bin_path}.tmp")
        self._idx_tmp = Path(f"{self.idx_path}.tmp")
        self._info = np.iinfo(self.dtype)
        self._num_documents = 0
        self._num_tokens = 0
        self._done = False
        try:
            self.bin_path.parent.mkdir(parents=True, exist_ok=True)  # `--output data/web` makes data/
            self._bin = open(self._bin_tmp, "wb")
            self._idx = open(self._idx_tmp, "wb")
        except OSError as e:
            raise DataError(
                f"cannot write token file '{e.filename}': {e.strerror}; check that the output "
                "directory is writable"
            ) from e
        # Placeholder header: the counts are known only at finalize, which rewrites it.
        self._idx.write(bytes(HEADER.size))

    @property
    def num_documents(self) -> int:
        return self._num_documents

    @property
    def num_tokens(self) -> int:
        return self._num_tokens

    def __enter__(self) -> IndexedWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()

    def _check_open(self) -> None:
        if self._done:
            raise RuntimeError(f"IndexedWriter for '{self.bin_path}' is already finalized or aborted")

    def add_document(self, tokens: np.ndarray) -> None:
        """Append one document (a 1-D array of integer token ids) as one sequence."""
        self._check_open()
        tokens = np.asarray(tokens)
        where = f"document {self._num_documents} for '{self.bin_path}'"
        if tokens.ndim != 1 or (tokens.size and tokens.dtype.kind not in "iu"):
            raise DataError(
                f"{where} must be a 1-D array of integer token ids, got shape {tokens.shape} "
                f"dtype {tokens.dtype}; check the tokenizer output"
            )
        if tokens.size == 0:
            raise DataError(f"{where} is empty; skip empty documents before writing them")
        if tokens.size > INT32_MAX:
            raise DataError(
                f"{where} has {tokens.size} tokens, more than the index's int32 lengths hold; "
                "split it into smaller documents"
            )
        low, high = int(tokens.min()), int(tokens.max())
        if low < self._info.min or high > self._info.max:
            raise DataError(
                f"{where} has token ids in [{low}, {high}], outside {self.dtype}'s "
                f"[{self._info.min}, {self._info.max}]; pick the dtype with dtype_for_vocab(vocab_size) "
                "of the tokenizer that produced the ids"
            )
        self._bin.write(np.ascontiguousarray(tokens, dtype=self.dtype.newbyteorder("<")).data)
        self._idx.write(struct.pack("<i", tokens.size))
        self._num_documents += 1
        self._num_tokens += tokens.size

    def append_raw(self, bin_part: str | Path, sizes: np.ndarray) -> None:
        """Append a raw token file of this dtype holding len(sizes) documents of these lengths.

        The bytes are streamed, not loaded, so parallel prepare can join worker outputs of any size. The
        token ids are not range-checked again: the worker that wrote them did that.
        """
        self._check_open()
        sizes = np.asarray(sizes)
        if sizes.ndim != 1 or (sizes.size and sizes.dtype.kind not in "iu"):
            raise DataError(
                f"sizes for '{bin_part}' must be a 1-D integer array, got shape {sizes.shape} "
                f"dtype {sizes.dtype}"
            )
        if sizes.size and (sizes.min() < 1 or sizes.max() > INT32_MAX):
            raise DataError(
                f"sizes for '{bin_part}' must lie in [1, {INT32_MAX}], got [{sizes.min()}, "
                f"{sizes.max()}]; empty documents are not stored"
            )
        total = int(sizes.sum(dtype=np.int64))
        expected = total * self.dtype.itemsize
        with open(bin_part, "rb") as src:
            actual = os.fstat(src.fileno()).st_size
            if actual != expected:
                raise DataError(
                    f"'{bin_part}' is {actual} bytes but its {sizes.size} documents of {total} "
                    f"{self.dtype} tokens need {expected}; the part is truncated or from another run, "
                    f"{AGAIN}"
                )
            start = self._bin.tell()
            shutil.copyfileobj(src, self._bin, 16 << 20)
        if self._bin.tell() - start != expected:
            raise DataError(f"'{bin_part}' changed while it was being appended to '{self.bin_path}'; {AGAIN}")
        for i in range(0, sizes.size, CHUNK):
            self._idx.write(sizes[i : i + CHUNK].astype("<i4").tobytes())
        self._num_documents += sizes.size
        self._num_tokens += total

    def finalize(self) -> None:
        """Write the pointers, document indices and header, sync, and rename the pair into place."""
        if self._done:
            return
        try:
            self._write_index()
            self._bin.flush()
            os.fsync(self._bin.fileno())
            self._bin.close()
            self._idx.flush()
            os.fsync(self._idx.fileno())
            self._idx.close()
            # Drop any old .idx before the new .bin lands, so that no moment has an .idx beside a .bin
            # it does not describe; then the .idx last marks the pair complete.
            self.idx_path.unlink(missing_ok=True)
            fsync(self.idx_path.parent)
            replace(self._bin_tmp, self.bin_path)
            replace(self._idx_tmp, self.idx_path)
        except BaseException:
            self.abort()
            raise
        self._done = True

    def _write_index(self) -> None:
        n = self._num_documents
        self._idx.flush()
        itemsize = self.dtype.itemsize
        # Pointers are the running byte offsets of the lengths already streamed into this file; read them
        # back a chunk at a time through a second handle while the first appends.
        with open(self._idx_tmp, "rb") as lengths:
            lengths.seek(HEADER.size)
            offset = 0
            for i in range(0, n, CHUNK):
                sizes = np.frombuffer(lengths.read(4 * min(CHUNK, n - i)), dtype="<i4")
                ends = np.cumsum(sizes, dtype=np.int64) * itemsize + offset
                pointers = np.empty_like(ends)
                pointers[0] = offset
                pointers[1:] = ends[:-1]
                offset = int(ends[-1])
                self._idx.write(pointers.astype("<i8").tobytes())
        for i in range(0, n + 1, CHUNK):
            self._idx.write(np.arange(i, min(i + CHUNK, n + 1), dtype="<i8").tobytes())
        self._idx.seek(0)
        self._idx.write(HEADER.pack(MAGIC, VERSION, CODE_OF[self.dtype], n, n + 1))

    def abort(self) -> None:
        """Close and delete the temporary files. A previous complete pair at this prefix stays as it was,
        unless finalize failed after removing its .idx: then neither pair is readable, never a mix."""
        self._done = True
        for f in (self._bin, self._idx):
            f.close()
        for p in (self._bin_tmp, self._idx_tmp):
            p.unlink(missing_ok=True)


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
