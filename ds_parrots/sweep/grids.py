"""The paper's grids, as named lists of points (preset x task size or data mixture), and --filter on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from ds_parrots.errors import ConfigError

SYNTHETIC_WIDTHS = (256, 512, 1024)
EXPERTS = (1, 8, 16, 32, 64)  # 1: the dense model
BOOK_SIZES = (100_000, 500_000, 1_000_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000)
PRETRAIN_DENSE_WIDTHS = (256, 512, 1024, 2048, 4096)
PRETRAIN_MOE_WIDTHS = (256, 512, 1024)


@dataclass(frozen=True)
class Point:
    """One run of a grid, before the sweep's own flags are added."""

    name: str
    subcommand: str
    keys: dict
    """The grid coordinates (width, experts, book_size): what --filter key=value matches."""
    args: tuple[str, ...]
    """The flags that place the run in the grid (preset, task size, mixture); --extra may not override them."""


@dataclass(frozen=True)
class Grid:
    description: str
    points: Callable[[], list[Point]]
    defaults: tuple[str, ...] = ()
    """Train flags every run gets; --extra comes after them, so it may override these."""


def _ff(experts: int) -> str:
    return "dense" if experts == 1 else f"e{experts}"


def _synthetic(task: str, book_sizes: tuple[Optional[int], ...]) -> list[Point]:
    points = []
    for n in book_sizes:
        for d in SYNTHETIC_WIDTHS:
            for e in EXPERTS:
                size = {} if n is None else {"book_size": n}
                size_args = () if n is None else ("--task.book-size", str(n))
                points.append(
                    Point(
                        name=f"{task}{'' if n is None else f'-n{n}'}-d{d}-{_ff(e)}",
                        subcommand=task,
                        keys={"width": d, "experts": e, **size},
                        args=("--preset", f"synthetic-d{d}-{_ff(e)}", *size_args),
                    )
                )
    return points


def _pretrain(mixture: str, tag: str) -> list[Point]:
    models = [(d, 1, f"paper-dense-d{d}") for d in PRETRAIN_DENSE_WIDTHS]
    models += [(d, e, f"paper-moe-d{d}-e{e}") for d in PRETRAIN_MOE_WIDTHS for e in EXPERTS if e > 1]
    return [
        Point(
            name=f"pretrain-{tag}-d{d}-{_ff(e)}",
            subcommand="pretrain",
            keys={"width": d, "experts": e},
            args=("--preset", preset, "--data.mixture", mixture),
        )
        for d, e, preset in models
    ]


def _smoke() -> list[Point]:
    return [
        Point(
            name=f"phonebook-n{n}-{preset}",
            subcommand="phonebook",
            keys={"width": 64, "experts": e, "book_size": n},
            args=("--preset", preset, "--task.book-size", str(n)),
        )
        for n in (40, 80)
        for preset, e in (("tiny-dense", 1), ("tiny-moe", 8))
    ]


GRIDS: dict[str, Grid] = {
    "synthetic-phonebook": Grid(
        "phone-book memorization: widths 256/512/1024 x dense, 8/16/32/64 experts x book sizes 1e5 .. 3e6",
        lambda: _synthetic("phonebook", BOOK_SIZES),
    ),
    "synthetic-shortest-path": Grid(
        "shortest-path reasoning: widths 256/512/1024 x dense, 8/16/32/64 experts",
        lambda: _synthetic("shortest-path", (None,)),
    ),
    "pretrain-natural": Grid(
        "pre-training on natural language, L=20: dense widths 256 .. 4096, MoE widths "
        "256/512/1024 x 8/16/32/64 experts",
        lambda: _pretrain("natural_language", "natural"),
    ),
    "pretrain-math": Grid(
        "pre-training on math, L=20: dense widths 256 .. 4096, MoE widths 256/512/1024 x 8/16/32/64 experts",
        lambda: _pretrain("math", "math"),
    ),
    # Not a paper grid: CPU-sized (tiny presets, books of 40 and 80 entries, 3 steps) so that the tests,
    # and anyone trying the sweep machinery, can run a whole grid in a minute.
    "smoke": Grid(
        "CPU-sized check of the sweep machinery: tiny-dense / tiny-moe x phone-books of 40 and 80, 3 steps",
        _smoke,
        defaults=(
            "--train.steps",
            "3",
            "--train.global-batch",
            "8",
            "--train.micro-batch",
            "8",
            "--train.max-eval",
            "8",
            "--train.no-progress",
        ),
    ),
}


def select(grid_name: str, points: list[Point], filters: tuple[str, ...]) -> list[Point]:
    """The points every filter matches (key=value on the coordinates, otherwise a substring of the name)."""
    kept = points
    for f in filters:
        if "=" not in f:
            kept = [p for p in kept if f in p.name]
            continue
        key, want = (s.strip() for s in f.split("=", 1))
        key = key.replace("-", "_")
        if key not in points[0].keys:
            raise ConfigError(
                f"--filter {f}: {grid_name} runs have no coordinate {key!r}; use one of "
                f"{', '.join(points[0].keys)}, or a substring of the run name"
            )
        values = {_coordinate(v) for v in want.split(",")}
        kept = [p for p in kept if p.keys[key] in values]
    if not kept:
        axes = "; ".join(
            f"{k}: {', '.join(str(v) for v in sorted({p.keys[k] for p in points}))}" for k in points[0].keys
        )
        raise ConfigError(
            f"--filter {' '.join(filters)} selects none of the {len(points)} runs of {grid_name} "
            f"({axes}); loosen the filter"
        )
    return kept


def _coordinate(value: str):
    """'256' -> 256, '1e5' -> 100000, 'dense' -> 1 (experts); anything else stays a string (matches nothing)."""
    if value == "dense":
        return 1
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number
