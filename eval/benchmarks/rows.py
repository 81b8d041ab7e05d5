"""Benchmark files on disk: where a split lives, reading its rows, and typed field access that names the culprit.

A benchmark split is ``DIR/<name>/<split>.parquet`` (or ``.jsonl``, one JSON object a line, or ``.json``: a
list of objects, or JSON lines as ``datasets.Dataset.to_json`` writes them). Rows are numbered from 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

from ds_parrots.errors import ConfigError

FORMATS = ("parquet", "jsonl", "json")


def candidate_paths(bench_dir: Path, dirs: Sequence[str], split: str) -> list[Path]:
    """Every file a split may be read from, in the order they are tried."""
    return [Path(bench_dir) / d / f"{split}.{ext}" for d in dirs for ext in FORMATS]


def find_split(bench_dir: Path, dirs: Sequence[str], split: str, task: str) -> Path:
    """The first existing file for `split`; ConfigError naming every expected path when there is none."""
    bench_dir = Path(bench_dir)
    if not bench_dir.is_dir():
        raise ConfigError(f"benchmark directory '{bench_dir}' does not exist; it should hold one folder per "
                          f"benchmark, e.g. {bench_dir / task / (split + '.parquet')}")
    paths = candidate_paths(bench_dir, dirs, split)
    for path in paths:
        if path.is_file():
            return path
    raise ConfigError(f"no '{split}' split for benchmark '{task}': expected one of "
                      + ", ".join(str(p) for p in paths))


def _json_rows(path: Path) -> list[tuple[int, str]]:
    """(row number, JSON text) per non-blank line; the row number is the line number."""
    return [(n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]


def _parse_line(path: Path, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} row {number}: not valid JSON ({e.msg} at column {e.colno})") from None


def _whole_json(path: Path) -> Optional[list]:
    """The row list of a .json file holding one JSON document, or None when it is JSON lines instead."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    if isinstance(doc, dict):
        return [doc]  # a JSON-lines file with a single row parses as one document
    if not isinstance(doc, list):
        raise ConfigError(f"{path}: expected a list of row objects, got {type(doc).__name__}")
    return doc


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as e:  # noqa: BLE001  (pyarrow raises several types for a damaged or foreign file)
        raise ConfigError(f"{path}: cannot read as parquet ({e})") from None


def row_count(path: Path) -> int:
    """How many rows `path` holds, without converting them to Python objects where the format allows."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"{path}: cannot read as parquet ({e})") from None
    if path.suffix == ".json":
        whole = _whole_json(path)
        if whole is not None:
            return len(whole)
    return len(_json_rows(path))


def read_rows(path: Path, indices: Optional[Sequence[int]] = None) -> list[tuple[int, Any]]:
    """(1-based row number, row) for every row of `path`, or only the 0-based `indices`, in that order."""
    if path.suffix == ".parquet":
        table = _read_parquet(path)
        numbers = list(range(table.num_rows)) if indices is None else list(indices)
        if indices is not None:
            table = table.take(numbers)
        return [(i + 1, row) for i, row in zip(numbers, table.to_pylist())]
    whole = _whole_json(path) if path.suffix == ".json" else None
    if whole is not None:
        numbers = list(range(len(whole))) if indices is None else list(indices)
        return [(i + 1, whole[i]) for i in numbers]
    lines = _json_rows(path)
    chosen = lines if indices is None else [lines[i] for i in indices]
    return [(n, _parse_line(path, n, line)) for n, line in chosen]


class Row:
    """One row plus where it came from, so that every complaint names the file, the row and the field."""

    def __init__(self, data: Any, path: Path, number: int, schema: str):
        self.data = data
        self.where = f"{path} row {number}"
        self.schema = schema
        if not isinstance(data, dict):
            self.fail(f"expected a JSON object, got {type(data).__name__}")

    def fail(self, problem: str) -> NoReturn:
        """Raise the ConfigError users see: ``<file> row <n>: <problem> (<what rows need>)``."""
        raise ConfigError(f"{self.where}: {problem} ({self.schema})")

    def has(self, field: str) -> bool:
        """Whether the row carries a non-null `field`."""
        return self.data.get(field) is not None

    def get(self, field: str) -> Any:
        """The raw value of a required field."""
        if not self.has(field):
            self.fail(f"missing field '{field}'")
        return self.data[field]

    def _wrong_type(self, field: str, wanted: str, value: Any) -> NoReturn:
        self.fail(f"field '{field}' should be {wanted}, got {type(value).__name__} {value!r:.60}")

    def text(self, field: str) -> str:
        """A required string field."""
        value = self.get(field)
        if not isinstance(value, str):
            self._wrong_type(field, "a string", value)
        return value

    def texts(self, field: str, value: Any = None) -> list[str]:
        """A required non-empty list of strings (`value` when given stands in for the row's field)."""
        value = self.get(field) if value is None else value
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
            self._wrong_type(field, "a non-empty list of strings", value)
        return list(value)

    def integer(self, field: str) -> int:
        """A required integer field; digit strings such as HellaSwag's "2" are accepted."""
        value = self.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        self._wrong_type(field, "an integer", value)

    def number(self, field: str) -> float:
        """A required finite number; numeric strings are accepted."""
        value = self.get(field)
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            self._wrong_type(field, "a number", value)
        if not math.isfinite(number):
            self._wrong_type(field, "a finite number", value)
        return number

    def struct(self, field: str) -> dict:
        """A required object (struct) field."""
        value = self.get(field)
        if not isinstance(value, dict):
            self._wrong_type(field, "an object", value)
        return value
