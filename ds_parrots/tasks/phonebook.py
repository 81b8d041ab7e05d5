"""Synthetic task 2 (memorization): a phone-book of unique names and random numbers, queried closed book.

Train example i is book entry i: prompt `<bos>First Last ` and answer `ddd-ddd-dddd<eos>`, character
level. The eval queries are entries drawn from the book (the prompt is only the name); the figure of
merit is the largest book answered exactly on at least `pass_threshold` of them.

Names are synthesized, so nothing is downloaded: each pool holds distinct two-syllable names
(consonant, vowel, optional coda consonant), and a book of size N takes N distinct (first, last) index
pairs by a seeded draw without replacement. Two names never contain a space, so distinct pairs are
distinct "First Last" strings. The book is two int64 arrays (pair index, number): O(N) memory, a 3e6
book builds in well under a second, and train_example(i) is O(1).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from ds_parrots.data.tokenizer import char_tokenizer
from ds_parrots.errors import ConfigError
from ds_parrots.tasks.base import Example

ONSETS = "bdfghjklmnprstvz"
VOWELS = "aeiou"
CODAS = ("", "l", "m", "n", "r", "s")
SYLLABLES = tuple(c + v + k for c in ONSETS for v in VOWELS for k in CODAS)
POOL_LIMIT = (
    len(SYLLABLES) ** 2
)  # distinct two-syllable names (a syllable has exactly one vowel: parsing is unique)
NUMBER_LEN = len("ddd-ddd-dddd")
FIRST_STREAM, LAST_STREAM, BOOK_STREAM, NUMBER_STREAM, QUERY_STREAM = range(5)


def passes(exact_match: float, threshold: float) -> bool:
    """The paper's verdict for a book (threshold 0.9); tolerant by 1e-6 because accuracies are float32 means of
    0/1 scores. The one rule training, eval and the figures use."""
    return exact_match >= threshold - 1e-6


@dataclass
class PhonebookConfig:
    """A phone-book of unique synthesized names with uniform random numbers (closed-book retrieval)."""

    book_size: int = 1000
    """Number of unique (name, number) entries in the book (the paper sweeps 1e5 ... 3e6)."""
    first_names: int = 2000
    """Size of the first-name pool (ours); first_names x last_names bounds the book size."""
    last_names: int = 2000
    """Size of the last-name pool (ours; 2000 x 2000 = 4e6 names cover the paper's largest book, 3e6)."""
    num_queries: int = 1000
    """Eval queries, drawn without replacement from the book (paper: 1e3; capped at book_size)."""
    pass_threshold: float = 0.9
    """Exact-match accuracy at which the model is said to hold the book (paper: 90%)."""
    seed: int = 0
    """Seed of the name pools, the book's names and numbers, and the eval queries."""

    def __post_init__(self) -> None:
        for name in ("book_size", "first_names", "last_names", "num_queries"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("first_names", "last_names"):
            if getattr(self, name) > POOL_LIMIT:
                raise ConfigError(
                    f"{name}={getattr(self, name)} exceeds the {POOL_LIMIT} distinct two-syllable "
                    f"names; lower {name} and raise the other pool"
                )
        if self.book_size > self.first_names * self.last_names:
            raise ConfigError(
                f"book_size={self.book_size} exceeds the {self.first_names * self.last_names} unique "
                "names the name pools can make; raise first_names/last_names or lower book_size"
            )
        if not 0.0 < self.pass_threshold <= 1.0:
            raise ConfigError(f"pass_threshold={self.pass_threshold} must be in (0, 1]")
        if self.seed < 0:
            raise ConfigError(f"seed={self.seed} must be >= 0")


def name_pool(size: int, seed: int, stream: int) -> list[str]:
    """`size` distinct capitalized two-syllable names, a seeded draw without replacement."""
    picks = np.random.default_rng([seed, stream]).choice(POOL_LIMIT, size=size, replace=False)
    n = len(SYLLABLES)
    return [(SYLLABLES[k // n] + SYLLABLES[k % n]).capitalize() for k in picks.tolist()]


class PhonebookTask:
    name = "phonebook"

    def __init__(self, cfg: PhonebookConfig) -> None:
        self.cfg = cfg
        self.tokenizer = char_tokenizer(
            " -" + string.digits + string.ascii_lowercase + string.ascii_uppercase
        )
        self.first_pool = name_pool(cfg.first_names, cfg.seed, FIRST_STREAM)
        self.last_pool = name_pool(cfg.last_names, cfg.seed, LAST_STREAM)
        self._first_ids = [self.tokenizer.encode(s) for s in self.first_pool]
        self._last_ids = [self.tokenizer.encode(s) for s in self.last_pool]
        self._space, self._dash = self.tokenizer.encode(" -")
        self._digit0 = self.tokenizer.encode("0")[0]  # digits are consecutive ids
        # The book: entry i is the name (pair_index[i] // last_names, pair_index[i] % last_names).
        self.pair_index = np.random.default_rng([cfg.seed, BOOK_STREAM]).choice(
            cfg.first_names * cfg.last_names, size=cfg.book_size, replace=False
        )
        # Uniform over 0 .. 1e10-1, so each of the ten digits is uniform and independent.
        self.numbers = np.random.default_rng([cfg.seed, NUMBER_STREAM]).integers(
            0, 10**10, size=cfg.book_size
        )
        longest = max(map(len, self.first_pool)) + 1 + max(map(len, self.last_pool)) + 1
        self.max_answer_len = NUMBER_LEN + 1
        self.max_seq_len = 1 + longest + self.max_answer_len
        self._queries = np.random.default_rng([cfg.seed, QUERY_STREAM]).choice(
            cfg.book_size, size=min(cfg.num_queries, cfg.book_size), replace=False
        )

    def entry(self, i: int) -> tuple[str, str]:
        """Book entry i as text: ("First Last", "ddd-ddd-dddd")."""
        f, last = divmod(int(self.pair_index[i]), self.cfg.last_names)
        d = f"{int(self.numbers[i]):010d}"
        return f"{self.first_pool[f]} {self.last_pool[last]}", f"{d[:3]}-{d[3:6]}-{d[6:]}"

    def train_size(self) -> int:
        return self.cfg.book_size

    def train_example(self, i: int) -> Example:
        if not 0 <= i < self.cfg.book_size:
            raise IndexError(f"book entry {i} is out of range [0, {self.cfg.book_size})")
        f, last = divmod(int(self.pair_index[i]), self.cfg.last_names)
        digits = [self._digit0 + int(c) for c in f"{int(self.numbers[i]):010d}"]
        number = digits[:3] + [self._dash] + digits[3:6] + [self._dash] + digits[6:]
        return Example(
            prompt=[self.tokenizer.bos_id]
            + self._first_ids[f]
            + [self._space]
            + self._last_ids[last]
            + [self._space],
            answer=number + [self.tokenizer.eos_id],
            meta={"entry": int(i)},
        )

    def eval_examples(self) -> list[Example]:
        return [self.train_example(int(i)) for i in self._queries]

    def score(self, example: Example, generated) -> dict[str, float]:
        """Exact match: the generation starts with the number followed by <eos> (what follows is ignored)."""
        ids = [int(x) for x in generated[: len(example.answer)]]
        return {"exact_match": float(ids == example.answer)}

    def summary(self, metrics: dict[str, float]) -> str:
        """`metrics` holds the averaged scores; an optional "num_queries" key is the number scored."""
        acc = metrics["exact_match"]
        n = int(metrics.get("num_queries", len(self._queries)))
        verdict = "PASS" if passes(acc, self.cfg.pass_threshold) else "FAIL"
        return (
            f"{self.name}: exact match {100 * acc:.1f}% on {n} queries, book {self.cfg.book_size} entries: "
            f"{verdict} (>= {100 * self.cfg.pass_threshold:g}%)"
        )
