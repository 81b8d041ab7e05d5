"""Batched scoring of examples against a LanguageModel: one metrics dict per example, in input order.

world knowledge: generate, then exact match and token F1 over the gold aliases;
commonsense: one log-likelihood request per choice; ``acc`` compares raw sums, ``acc_norm`` divides each by
the continuation's length in UTF-8 bytes (lm-evaluation-harness's acc_norm);
math: generate a worked solution, extract its final answer, test equivalence with the gold answer.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from ..lm import LanguageModel
from .examples import ChoiceExample, Example
from .math_answer import extract_answer, is_equiv, minerva_normalize
from .normalize import exact_match, token_f1
from .prompts import choice_requests, generation_prompt
from .registry import Benchmark

Metrics = dict[str, float]


def _argmax(values: Sequence[float]) -> int:
    # The first of equal scores wins, as numpy's argmax does in the harness.
    return max(range(len(values)), key=lambda i: (values[i], -i))


def score_choice(lls: Sequence[float], example: ChoiceExample) -> Metrics:
    """acc and acc_norm of one multiple-choice item given each choice's summed log-likelihood."""
    lengths = [max(len(c.encode("utf-8")), 1) for c in example.continuations]
    return {"acc": float(_argmax(lls) == example.gold),
            "acc_norm": float(_argmax([ll / n for ll, n in zip(lls, lengths)]) == example.gold)}


def score_generation(bench: Benchmark, output: str, example: Example) -> Metrics:
    """The metrics of one generated answer."""
    if bench.category == "world_knowledge":
        prediction = output.strip()
        return {"em": exact_match(prediction, example.answers), "f1": token_f1(prediction, example.answers)}
    predicted = extract_answer(output)
    if bench.style == "minerva" and predicted is not None:
        predicted = minerva_normalize(predicted)
    return {"acc": float(is_equiv(predicted, example.answer))}


def _check(kind: str, got: list, wanted: int) -> list:
    if not isinstance(got, list) or len(got) != wanted:
        raise ValueError(f"LanguageModel.{kind} returned {len(got) if isinstance(got, list) else type(got).__name__}"
                         f" results for {wanted} requests")
    return got


def score_examples(lm: LanguageModel, bench: Benchmark, shots: Sequence[Example], examples: Sequence[Example],
                   batch_size: int = 32, on_batch: Optional[Callable[[int], None]] = None) -> list[Metrics]:
    """Score `examples` with `shots` as exemplars, `batch_size` examples per model call."""
    results: list[Metrics] = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        if bench.style == "choice":
            requests = [choice_requests(shots, ex) for ex in batch]
            flat = [r for per_example in requests for r in per_example]
            lls = _check("loglikelihood", lm.loglikelihood(flat), len(flat))
            offset = 0
            for ex, reqs in zip(batch, requests):
                results.append(score_choice([float(ll) for ll, _ in lls[offset:offset + len(reqs)]], ex))
                offset += len(reqs)
        else:
            prompts = [generation_prompt(bench.style, shots, ex) for ex in batch]
            outputs = _check("generate", lm.generate(prompts, bench.max_new_tokens, list(bench.stop)), len(batch))
            results.extend(score_generation(bench, out, ex) for out, ex in zip(outputs, batch))
        if on_batch is not None:
            on_batch(len(batch))
    return results
