"""The three shapes a benchmark row is read into: a QA question, a multiple-choice item, a math problem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


def _key(text: str) -> str:
    # Whitespace differences between splits must not hide that two rows are the same question.
    return " ".join(text.split())


@dataclass(frozen=True)
class QAExample:
    """A closed-book question with its gold answers (the first one is the canonical answer shown in few-shot)."""

    question: str
    """The question as the dataset writes it."""
    answers: tuple[str, ...]
    """Every accepted answer (aliases included); answers[0] is shown when the example is an exemplar."""

    @property
    def key(self) -> str:
        """Identity of the question, for keeping few-shot exemplars out of the scored set."""
        return _key(self.question)


@dataclass(frozen=True)
class ChoiceExample:
    """A multiple-choice item scored by log-likelihood: choice i is (contexts[i], continuations[i]).

    Most tasks share one context across choices; WinoGrande's partial scoring varies the context instead.
    """

    text: str
    """The item's question (WinoGrande: its sentence), which identifies it."""
    contexts: tuple[str, ...]
    """Prompt text before each choice."""
    continuations: tuple[str, ...]
    """Each choice's scored text; it starts where its context ends (usually with a space)."""
    gold: int
    """Index of the correct choice."""

    @property
    def key(self) -> str:
        """Identity of the item, for keeping few-shot exemplars out of the scored set."""
        return _key(self.text)

    def requests(self) -> list[tuple[str, str]]:
        """One (context, continuation) log-likelihood request per choice."""
        return list(zip(self.contexts, self.continuations))


@dataclass(frozen=True)
class MathExample:
    """A math problem, its gold final answer, and (for few-shot exemplars) a worked solution."""

    problem: str
    """The problem statement."""
    answer: str
    """The gold final answer (a number or LaTeX)."""
    solution: str = ""
    """A worked solution ending in the answer, shown when the example is an exemplar."""

    @property
    def key(self) -> str:
        """Identity of the problem, for keeping few-shot exemplars out of the scored set."""
        return _key(self.problem)


Example = Union[QAExample, ChoiceExample, MathExample]
