"""Range checks of numeric flags and names, shared by the config dataclasses.

Every float flag goes through `number`: a plain comparison (`lr <= 0`) lets NaN through (every comparison
with NaN is false) and infinity too, and torch or DeepSpeed then fail deep inside the run or, worse, train.
"""

from __future__ import annotations

import math
from typing import Optional

from ds_parrots.errors import ConfigError

NAME_MAX = 255  # bytes per path component on Linux (and macOS, Windows)


def number(
    flag: str,
    value,
    low: Optional[float] = None,
    high: Optional[float] = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> None:
    """Refuse a value that is not a finite number within [low, high] (open ends where asked), naming the flag:
    `--optim.lr=nan must be a finite number > 0`."""
    if value is None:
        return
    inside = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if inside and low is not None:
        inside = value > low if low_open else value >= low
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if not inside:
        raise ConfigError(
            f"{flag}={value} must be a finite number {_rule(low, high, low_open, high_open)}{hint}"
        )


def _rule(low, high, low_open, high_open) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def at_least(flag: str, value, low: int) -> None:
    """Whole-number flags (tyro already refused what is not an int); None means unset."""
    if value is not None and value < low:
        raise ConfigError(f"{flag}={value} must be >= {low}")


def path_component(flag: str, name: str, what: str, fix: Optional[str] = None) -> None:
    """A name that becomes one directory: no separators, not `.` / `..` (which would land outside its parent),
    not empty, no NUL, and at most NAME_MAX bytes (else the first mkdir fails with ENAMETOOLONG). `fix` is
    what to do when the name was not given (a derived one), else None."""
    shown = name if len(name) <= 60 else f"{name[:40]}...({len(name)} characters)"
    said = f"{flag}={shown!r}" if flag.startswith("--") else f"{flag} {shown!r}"
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ConfigError(
            f"{said} must be {what}: non-empty, without '/' or NUL, and not '.' or '..'; "
            f"{fix or 'give a plain name (parent directories go in --train.out-dir)'}"
        )
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > NAME_MAX:
        raise ConfigError(
            f"{said} is {size} bytes; a directory name holds at most {NAME_MAX}; {fix or 'shorten it'}"
        )


def path_components(flag: str, path: str) -> None:
    """Every component of a path is within NAME_MAX bytes (separators and '..' are allowed here)."""
    for part in str(path).split("/"):
        size = len(part.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            raise ConfigError(
                f"{flag}: the path component {part[:40]!r}... is {size} bytes; a directory name holds at most "
                f"{NAME_MAX}; shorten it"
            )
