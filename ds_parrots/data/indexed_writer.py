"""Writing a token-file pair (.bin / .idx) crash-consistently: see IndexedWriter."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np

from ds_parrots.data.index_format import (
    AGAIN,
    CHUNK,
    CODE_OF,
    HEADER,
    INT32_MAX,
    MAGIC,
    VERSION,
    checked_index_dtype,
    paths_of,
)
from ds_parrots.errors import DataError
from ds_parrots.fileio import fsync, replace


class IndexedWriter:
    """Writes one `<prefix>.bin` / `<prefix>.idx` pair, atomically.

    Everything goes to `<prefix>.bin.tmp` / `<prefix>.idx.tmp` first; `finalize` renames the .bin and
    then the .idx, so an .idx on disk always means its .bin is complete. The sequence lengths are
    streamed into the .idx.tmp as documents arrive and the header is written last, so the writer holds
    no per-document state in RAM.
    """

    def __init__(self, prefix: str | Path, dtype: np.dtype) -> None:
        self.dtype = checked_index_dtype(dtype)
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
