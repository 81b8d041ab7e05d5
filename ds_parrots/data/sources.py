"""Reading text corpora for `prepare` and tokenizer training: formats, input checks, and the split of the
input into contiguous tasks that workers read themselves.

  .jsonl / .ndjson   one JSON object per line, the text in --text-field (blank lines are not documents)
  .txt               one document per line
  .parquet           the --text-field column
  .json, and any of these compressed (.gz / .bz2 / .xz)   read with Hugging Face `datasets`
  one name that is no local file                         a Hugging Face Hub dataset (needs internet)

Tasks are newline-aligned byte ranges of .jsonl / .txt, row groups of .parquet, row ranges of what
`datasets` loaded: many more than processes, so that uneven documents still balance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional

import numpy as np

from ds_parrots.errors import DataError

# Suffix -> how we read it: our own readers split a file across workers; "datasets" loads it whole first.
READERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt", ".parquet": "parquet", ".json": "datasets"}
COMPRESSIONS = {".gz", ".bz2", ".xz"}
BUILDERS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".txt": "text", ".parquet": "parquet"}
FORMAT_LIST = ".jsonl, .json, .parquet or .txt (optionally .gz, .bz2 or .xz)"

# About 32 tasks per process, so the last ones finishing alone cost little; each at most 8 MiB (bounded
# worker memory) and at least 4 KiB (a task costs ~1 ms beyond its encoding).
TASKS_PER_PROC = 32
MIN_TASK_BYTES = 4 << 10
MAX_TASK_BYTES = 8 << 20


def data_format(path: Path) -> Optional[str]:
    """How a file is read ("jsonl", "txt", "parquet", "datasets"), or None for a suffix we do not read."""
    suffixes = path.suffixes
    compressed = bool(suffixes) and suffixes[-1] in COMPRESSIONS
    if compressed:
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in READERS:
        return None
    return "datasets" if compressed else READERS[suffixes[-1]]


def check_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """The inputs as paths, once each is an existing file of a format we read."""
    paths = [Path(p) for p in inputs]
    if not paths:
        raise DataError("no --input given; pass one or more text files")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise DataError(f"input files not found: {', '.join(missing)}; check the --input paths")
    for p in paths:
        if p.is_dir():
            raise DataError(f"input '{p}' is a directory; pass its files (e.g. '{p}/*.parquet')")
        if data_format(p) is None:
            raise DataError(f"input '{p}' has an unknown format; use {FORMAT_LIST}")
    return paths


def is_hub_name(inputs: Sequence[str | Path]) -> bool:
    """One input that is no local file and looks like "name" or "org/name": a Hugging Face Hub dataset."""
    if len(inputs) != 1 or Path(inputs[0]).exists():
        return False
    name = str(inputs[0])
    return name.count("/") <= 1 and not name.startswith((".", "/")) and not Path(name).suffix


@dataclass
class Source:
    """One input: a file we split ourselves, or a `datasets.Dataset` whose one column is "text"."""

    name: str
    reader: str
    """How it is read: jsonl, txt, parquet (split by us) or datasets (loaded whole by `datasets`)."""
    text_field: str
    dataset: Any = field(default=None, repr=False)


class Task(NamedTuple):
    """A contiguous piece of one source: a byte range (jsonl, txt), row groups (parquet) or rows (datasets)."""

    source: int
    start: int
    stop: int
    weight: int
    """Bytes, for the progress bar."""
    first_row: int = 0
    """Row number of the first document (parquet, datasets); line numbers of byte ranges are found on error."""


# --- Opening the inputs ------------------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    # datasets wraps the reader's error ("An error occurred while generating the dataset"); the cause says what.
    while e.__cause__ is not None:
        e = e.__cause__
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _text_column(ds, name: str, text_field: str):
    """The dataset reduced to its text column, named "text"; DataError when the field is absent or not text."""
    if text_field not in ds.column_names:
        raise DataError(
            f"input '{name}' has no field {text_field!r}; its fields are {', '.join(ds.column_names)}; "
            "pass the one holding the text with --text-field"
        )
    feature = ds.features[text_field]
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        raise DataError(
            f"field {text_field!r} of input '{name}' holds {feature} values, not text; pass the field "
            "holding the text with --text-field"
        )
    ds = ds.select_columns([text_field])
    return ds.rename_column(text_field, "text") if text_field != "text" else ds


def _check_jsonl_field(path: Path, text_field: str) -> None:
    """Fail before any work when the first object lacks the field; workers check every other line."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    _json_text(line, text_field)
                except _BadLine as e:
                    raise DataError(f"'{path}' line {number} {e}") from None
                return


def _check_parquet_field(path: Path, text_field: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"cannot read input '{path}' as parquet: {_first_line(e)}; check the file") from None
    if text_field not in schema.names:
        raise DataError(_no_field(f"input '{path}'", text_field, schema.names))
    kind = schema.field(text_field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(
            f"field {text_field!r} of input '{path}' holds {kind} values, not text; pass the field "
            "holding the text with --text-field"
        )


def _load_with_datasets(path: Path, text_field: str, cache_dir: Optional[str | Path]):
    import datasets

    builder = BUILDERS[path.suffixes[-2] if path.suffix in COMPRESSIONS else path.suffix]
    try:
        ds = datasets.load_dataset(
            builder,
            data_files=[str(path)],
            split="train",
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except Exception as e:  # the reader's own error, whatever its type, is what the user needs to see
        raise DataError(
            f"cannot read input '{path}' as {builder}: {_first_line(e)}; check the file"
        ) from None
    # A text builder's documents are lines, in a column named "text" whatever --text-field says.
    return _text_column(ds, str(path), "text" if builder == "text" else text_field)


def _load_hub(name: str, text_field: str, cache_dir: Optional[str | Path]):
    import datasets

    try:
        ds = datasets.load_dataset(
            name, split="train", cache_dir=None if cache_dir is None else str(cache_dir)
        )
    except Exception as e:  # offline, unknown name, gated: all say the same to the user
        raise DataError(
            f"input '{name}' is not a local file, and loading it as a Hugging Face Hub dataset failed "
            f"({_first_line(e)}); a Hub dataset needs internet: download it where there is a "
            f"connection and pass its files, or check the path; local files must end in "
            f"{FORMAT_LIST}"
        ) from None
    return _text_column(ds, name, text_field)


def open_sources(
    inputs: Sequence[str | Path], text_field: str = "text", cache_dir: Optional[str | Path] = None
) -> list[Source]:
    """Check the inputs and their text field; load those that `datasets` reads (`cache_dir`: where it keeps
    its Arrow copy; None: its default cache)."""
    if is_hub_name(inputs):
        return [Source(str(inputs[0]), "datasets", "text", _load_hub(str(inputs[0]), text_field, cache_dir))]
    sources = []
    for path in check_inputs(inputs):
        reader = data_format(path)
        if reader == "jsonl":
            _check_jsonl_field(path, text_field)
        elif reader == "parquet":
            _check_parquet_field(path, text_field)
        dataset = _load_with_datasets(path, text_field, cache_dir) if reader == "datasets" else None
        sources.append(Source(str(path), reader, text_field, dataset))
    return sources


# --- Cutting them into tasks -------------------------------------------------------------------------------


def _line_ranges(path: str, target: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of about `target` bytes, each ending just after a newline (or at the end of the file)."""
    size = os.path.getsize(path)
    start = 0
    with open(path, "rb") as f:
        while start < size:
            stop = min(start + target, size)
            f.seek(stop)
            while stop < size:
                block = f.read(1 << 16)
                newline = block.find(b"\n")
                if newline >= 0:
                    stop += newline + 1
                    break
                stop += len(block)
            yield start, stop
            start = stop


def _dataset_ranges(dataset, target: int) -> Iterator[tuple[int, int, int]]:
    """(start, stop, text bytes) row ranges of about `target` text bytes; reads only the Arrow offsets."""
    import pyarrow.compute as pc

    start = row = 0
    cut_at = before = 0  # text bytes up to the last cut, and before the current chunk
    for chunk in dataset.data.column("text").chunks:
        ends = (
            np.cumsum(pc.binary_length(chunk).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
            + before
        )
        while ends.size and ends[-1] - cut_at >= target:
            i = int(np.searchsorted(ends, cut_at + target))  # the row that reaches target closes the task
            yield start, row + i + 1, int(ends[i]) - cut_at
            start, cut_at = row + i + 1, int(ends[i])
        before = int(ends[-1]) if ends.size else before
        row += ends.size
    if row > start:
        yield start, row, before - cut_at


def _source_bytes(source: Source) -> int:
    if source.reader == "datasets":
        import pyarrow.compute as pc

        return int(pc.sum(pc.binary_length(source.dataset.data.column("text"))).as_py() or 0)
    return os.path.getsize(source.name)


def plan_tasks(sources: list[Source], num_proc: int) -> list[Task]:
    """Contiguous tasks covering every source in order."""
    import pyarrow.parquet as pq

    total = sum(_source_bytes(s) for s in sources)
    target = min(max(total // (num_proc * TASKS_PER_PROC), MIN_TASK_BYTES), MAX_TASK_BYTES)
    tasks = []
    for i, s in enumerate(sources):
        if s.reader in ("jsonl", "txt"):
            tasks += [Task(i, a, b, b - a) for a, b in _line_ranges(s.name, target)]
        elif s.reader == "parquet":
            # A row group is read whole, so it is the smallest task; writers keep them ~100 MB or less.
            meta, row = pq.ParquetFile(s.name).metadata, 0
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                tasks.append(Task(i, g, g + 1, group.total_byte_size, row))
                row += group.num_rows
        else:
            tasks += [Task(i, a, b, w, a) for a, b, w in _dataset_ranges(s.dataset, target)]
    return tasks


# --- Reading one task's documents --------------------------------------------------------------------------


def _no_field(where: str, text_field: str, fields: list) -> str:
    return (
        f"{where} has no field {text_field!r}; its fields are {', '.join(map(str, fields)) or 'none'}; "
        "pass the one holding the text with --text-field"
    )


JSON_TYPES = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}


class _BadLine(Exception):
    """What is wrong with one .jsonl line; the caller adds where it is."""


def _json_text(line: bytes, text_field: str) -> Optional[str]:
    """The text of one JSON line (None for null)."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise _BadLine(f"is not valid JSON ({e}); fix or remove the line") from None
    if not isinstance(obj, dict):
        raise _BadLine(
            f"is a JSON {type(obj).__name__}, not an object with a {text_field!r} field; each line of "
            "a .jsonl file must be one object"
        )
    if text_field not in obj:
        raise _BadLine(_no_field("", text_field, list(obj)).lstrip())
    text = obj[text_field]
    if text is not None and not isinstance(text, str):
        kind = JSON_TYPES.get(type(text), type(text).__name__)
        raise _BadLine(
            f"has a JSON {kind} in field {text_field!r} ({json.dumps(text)[:40]}), not text; pass the "
            "field holding the text with --text-field"
        )
    return text


def _line_number(path: str, offset: int, index: int) -> int:
    """1-based line number of line `index` of the range starting at byte `offset` (counted on error only)."""
    before = 0
    with open(path, "rb") as f:
        while f.tell() < offset:
            before += f.read(min(1 << 20, offset - f.tell())).count(b"\n")
    return before + index + 1


def _read_lines(path: str, start: int, stop: int) -> list[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(stop - start)
    lines = data.split(b"\n")
    if lines and not lines[-1]:  # the range ends just after a newline
        lines.pop()
    return lines


def read_task(source: Source, task: Task) -> tuple[list[Optional[str]], Callable[[int], str]]:
    """The texts of a task's documents (None where null) and a function naming document i for errors."""
    name = source.name
    if source.reader == "jsonl":
        texts, line_of = [], []
        for k, line in enumerate(_read_lines(name, task.start, task.stop)):
            if not line.strip():
                continue  # blank lines separate nothing in JSON lines; they are not rows (as in `datasets`)
            try:
                texts.append(_json_text(line, source.text_field))
            except _BadLine as e:
                raise DataError(f"'{name}' line {_line_number(name, task.start, k)} {e}") from None
            line_of.append(k)
        return texts, lambda i: f"'{name}' line {_line_number(name, task.start, line_of[i])}"
    if source.reader == "txt":
        lines = _read_lines(name, task.start, task.stop)
        texts = []
        for k, line in enumerate(lines):
            try:
                texts.append(line.decode("utf-8").removesuffix("\r"))
            except UnicodeDecodeError as e:
                raise DataError(
                    f"'{name}' line {_line_number(name, task.start, k)} is not valid UTF-8 ({e.reason} "
                    f"at byte {e.start} of the line); convert the file to UTF-8"
                ) from None
        return texts, lambda i: f"'{name}' line {_line_number(name, task.start, i)}"
    if source.reader == "parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(name).read_row_groups(
            list(range(task.start, task.stop)), columns=[source.text_field]
        )
        texts = table.column(0).to_pylist()
    else:
        texts = source.dataset[task.start : task.stop]["text"]
    return texts, lambda i: f"'{name}' row {task.first_row + i} (0-based)"


def read_documents(
    inputs: Sequence[str | Path], text_field: str = "text", cache_dir: Optional[str | Path] = None
) -> Iterator[list[Optional[str]]]:
    """The inputs' texts in order, a task's worth at a time (None where a text is null), in this process."""
    sources = open_sources(inputs, text_field, cache_dir)
    for task in plan_tasks(sources, 1):
        yield read_task(sources[task.source], task)[0]


# --- Encoding in parallel ----------------------------------------------------------------------------------
