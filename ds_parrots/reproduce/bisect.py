"""Bisection over a ladder of book sizes: the largest rung a model passes, in ceil(log2(n + 1)) probes.

It assumes passing is monotone in the book size (a model that holds a book holds every smaller one), so each
probe halves the rungs still in doubt. Every probe is recorded, so a table can show where that assumption was
tested and a reader can spot a non-monotone model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Optional


@dataclass
class Search:
    """The outcome of one model's bisection."""

    ladder: tuple[int, ...]
    """The rungs, smallest first."""
    probes: list[tuple[int, Optional[bool]]] = field(default_factory=list)
    """(rung, passed) in the order probed; passed is None when the probe could not run (it crashed)."""
    best: int = -1
    """Index of the largest rung known to pass; -1 when none is."""

    @property
    def bound(self) -> Literal["exact", "at_least", "below", "error"]:
        """exact: `capacity` passed and the next rung failed; at_least: the largest rung passed; below: the
        smallest rung failed; error: a probe crashed before the search ended."""
        if self.probes and self.probes[-1][1] is None:
            return "error"
        if self.best < 0:
            return "below"
        return "at_least" if self.best == len(self.ladder) - 1 else "exact"

    @property
    def capacity(self) -> Optional[int]:
        """The largest rung passed (None when none did, or the search ended in a crash)."""
        return None if self.best < 0 or self.bound == "error" else self.ladder[self.best]


def max_probes(rungs: int) -> int:
    """Probes a bisection over `rungs` rungs takes: ceil(log2(rungs + 1)) (the +1: 'none passes' is an answer)."""
    return rungs.bit_length()


def bisect_ladder(ladder: tuple[int, ...], passes: Callable[[int], Optional[bool]]) -> Search:
    """Probe rungs with `passes(rung)` until the largest passing one is known. `passes` returns None when its
    probe crashed: the search stops there (a crash says nothing about capacity)."""
    if not ladder or list(ladder) != sorted(set(ladder)):
        raise ValueError(f"a ladder is a non-empty increasing sequence of book sizes, not {ladder}")
    search = Search(tuple(ladder))
    lo, hi = (
        -1,
        len(ladder),
    )  # lo: largest rung known to pass (-1: none); hi: smallest known to fail (n: none)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok = passes(ladder[mid])
        search.probes.append((ladder[mid], ok))
        if ok is None:
            break
        lo, hi = (mid, hi) if ok else (lo, mid)
    search.best = lo
    return search
