"""Few-shot prompts: each exemplar rendered with its answer, then the scored item without it.

Styles: "qa" (closed-book questions), "choice" (multiple choice; the reader already wrote each choice's text),
"cot" (GSM8k chain of thought, "Q: ... A: ... The answer is X."), "math" (MATH, "Problem: ... Solution:" ending
in a ``\\boxed{}`` answer) and "minerva" (the same, plus Minerva's "Final Answer: ..." line).
"""

from __future__ import annotations

from typing import Sequence

from .examples import ChoiceExample, Example, MathExample, QAExample

SHOT_SEPARATOR = "\n\n"


def _qa_query(question: str) -> str:
    question = question.strip()
    return f"Question: {question if question.endswith('?') else question + '?'}\nAnswer:"


def _math_query(style: str, problem: str) -> str:
    return f"Q: {problem}\nA:" if style == "cot" else f"Problem:\n{problem}\n\nSolution:"


def shot_text(style: str, example: Example) -> str:
    """An exemplar as it appears in a prompt: the question together with its answer."""
    if isinstance(example, QAExample):
        return f"{_qa_query(example.question)} {example.answers[0]}"
    if isinstance(example, ChoiceExample):
        return example.contexts[example.gold] + example.continuations[example.gold]
    # Minerva's prompt starts the solution on the line after "Solution:"; the CoT answer follows "A:" on its line.
    separator = " " if style == "cot" else "\n"
    text = f"{_math_query(style, example.problem)}{separator}{example.solution}"
    if style == "minerva":
        text += f"\nFinal Answer: The final answer is ${example.answer}$. I hope it is correct."
    return text


def _prefix(style: str, shots: Sequence[Example]) -> str:
    return "".join(shot_text(style, s) + SHOT_SEPARATOR for s in shots)


def generation_prompt(style: str, shots: Sequence[Example], example: QAExample | MathExample) -> str:
    """The full prompt whose greedy continuation is the model's answer to `example`."""
    query = _qa_query(example.question) if isinstance(example, QAExample) else _math_query(style, example.problem)
    return _prefix(style, shots) + query


def choice_requests(shots: Sequence[Example], example: ChoiceExample) -> list[tuple[str, str]]:
    """One (context, continuation) request per choice, the exemplars prepended to every context."""
    prefix = _prefix("choice", shots)
    return [(prefix + context, continuation) for context, continuation in example.requests()]
