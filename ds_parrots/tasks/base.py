"""What every synthetic task gives the trainer and the evaluator.

A task is a deterministic function of its config: `train_example(i)` is a pure function of
(config, i), so any rank can build any sample and resuming needs only the sample counter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ds_parrots.data.tokenizer import SymbolTokenizer


@dataclass
class Example:
    """One task instance as token ids. The loss is taken on `answer` only (the prompt is masked)."""

    prompt: list[int]
    """Token ids the model reads (starts with <bos>)."""
    answer: list[int]
    """Token ids the model must produce, ending with <eos>."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Whatever `score` needs beyond the answer ids (e.g. the graph for shortest-path)."""


class SyntheticTask(Protocol):
    name: str
    tokenizer: SymbolTokenizer
    max_seq_len: int
    """Upper bound of len(prompt) + len(answer) over every example this task can produce."""
    max_answer_len: int
    """Upper bound of len(answer) (with <eos>): the greedy decoding budget."""

    def train_size(self) -> int:
        """Number of distinct training examples (one epoch)."""

    def train_example(self, i: int) -> Example:
        """Training example i, 0 <= i < train_size(); a pure function of (config, i)."""

    def eval_examples(self) -> list[Example]:
        """The held-out queries scored by generation (phone-book: queries drawn from the book)."""

    def score(self, example: Example, generated: list[int]) -> dict[str, float]:
        """Metrics (name -> 0.0 or 1.0) of one greedy generation (ids after the prompt)."""

    def summary(self, metrics: dict[str, float]) -> str:
        """One line for the console from the averaged metrics (e.g. the phone-book 90% verdict)."""
