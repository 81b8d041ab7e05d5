"""What the benchmark suites need from a model: log-likelihoods of continuations and greedy generation."""

from __future__ import annotations

from typing import Protocol


class LanguageModel(Protocol):
    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, int]]:
        """For each (context, continuation): (sum of log p(continuation tokens | context), number of
        continuation tokens). The continuation starts exactly where the context ends (no space added)."""
        ...

    def generate(self, prompts: list[str], max_new_tokens: int, stop: list[str]) -> list[str]:
        """Greedy continuation of each prompt, as text, cut before the first occurrence of any stop string
        (and at end of sequence)."""
        ...
