"""Local benchmark files: where a split lives, and a check of every row before lm-eval reads it.

Kept because lm-eval lacks it: given a missing file it would try to download the dataset, and given a row
without a field it fails deep inside a Jinja template or a task's utils.py. Here either is one line naming
the file, the row (numbered from 1) and the field. Files are <bench-dir>/<name>/<split>.parquet or .jsonl
(one JSON object a line), in the benchmark's public Hugging Face schema.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ds_parrots.errors import ConfigError

FORMATS = ("parquet", "jsonl")
# datasets' builder for each format: `datasets.load_dataset(builder, data_files=...)` reads local files only.
BUILDERS = {"parquet": "parquet", "jsonl": "json"}


def find_split(bench_dir: Path, dirs: Sequence[str], split: str, name: str) -> Path:
    """The first existing file for `split`; a one-line error naming every path tried when there is none."""
    bench_dir = Path(bench_dir)
    if not bench_dir.is_dir():
        raise ConfigError(
            f"benchmark directory '{bench_dir}' does not exist; it should hold one folder per "
            f"benchmark, e.g. {bench_dir / name / (split + '.parquet')}"
        )
    paths = [bench_dir / d / f"{split}.{ext}" for d in dirs for ext in FORMATS]
    for path in paths:
        if path.is_file():
            return path
    raise ConfigError(
        f"no '{split}' split for benchmark '{name}': expected one of " + ", ".join(map(str, paths))
    )


def has_split(bench_dir: Path, dirs: Sequence[str], split: str) -> bool:
    return any((Path(bench_dir) / d / f"{split}.{ext}").is_file() for d in dirs for ext in FORMATS)


def read_rows(path: Path) -> list[tuple[int, Any]]:
    """(1-based row number, row) for every row of a .parquet or .jsonl file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001  (pyarrow raises several types for a damaged or foreign file)
            raise ConfigError(f"{path}: cannot read as parquet ({e})") from None
        return list(enumerate(table.to_pylist(), 1))
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} row {number}: not valid JSON ({e.msg} at column {e.colno})") from None
    return rows


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":  # HellaSwag's label "2" and WinoGrande's answer "1" are digit strings
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.strip().lstrip("-").isdigit()
        )
    if kind == "number":
        try:
            return not isinstance(value, bool) and math.isfinite(float(value))
        except (TypeError, ValueError):
            return False
    if kind == "list":
        return isinstance(value, (list, tuple)) and len(value) > 0
    if kind == "struct":
        return isinstance(value, dict)
    return True


WANTED = {
    "str": "a string",
    "int": "an integer",
    "number": "a number",
    "list": "a non-empty list",
    "struct": "an object",
    "any": "a value",
}


def check_rows(path: Path, fields: dict[str, str], what: str) -> int:
    """Every row of `path` carries `fields` with the right kind; returns the row count (0 rows: an error)."""
    rows = read_rows(path)
    if not rows:
        raise ConfigError(f"{path} has no rows ({what} rows need {', '.join(fields)})")
    for number, row in rows:
        if not isinstance(row, dict):
            raise ConfigError(f"{path} row {number}: expected a JSON object, got {type(row).__name__}")
        for field, kind in fields.items():
            if row.get(field) is None:
                raise ConfigError(
                    f"{path} row {number}: missing field '{field}' ({what} rows need {', '.join(fields)})"
                )
            if not _kind_ok(kind, row[field]):
                raise ConfigError(
                    f"{path} row {number}: field '{field}' should be {WANTED[kind]}, got "
                    f"{type(row[field]).__name__} {row[field]!r:.60}"
                )
    return len(rows)
