"""One reader per benchmark: a row in the benchmark's public Hugging Face schema -> an Example.

Multiple-choice readers also write the prompt text of each choice, following lm-evaluation-harness
(``doc_to_text`` / ``doc_to_choice``) so that our numbers are comparable with the harness's.
Hugging Face stores a sequence of structs (ARC's ``choices``, ComplexWebQuestions' ``answers``) as a struct of
lists in parquet but as a list of objects in the original JSON; both are accepted.
"""

from __future__ import annotations

import re

from .examples import ChoiceExample, MathExample, QAExample
from .math_answer import last_boxed, minerva_normalize
from .rows import Row


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for s in items if s.strip()))


def _records(row: Row, field: str, keys: tuple[str, ...]) -> list[dict]:
    """A sequence of structs as a list of dicts, whichever way it was stored."""
    value = row.get(field)
    if isinstance(value, dict):
        columns = {k: value.get(k) for k in keys}
        lengths = {len(v) for v in columns.values() if isinstance(v, list)}
        if len(lengths) != 1 or any(not isinstance(v, list) for v in columns.values()):
            row.fail(f"field '{field}' should hold equal-length lists {', '.join(keys)}")
        return [dict(zip(keys, values)) for values in zip(*columns.values())]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value
    row.fail(f"field '{field}' should be a non-empty list of objects with {', '.join(keys)}")


# ---------------------------------------------------------------- world knowledge


def triviaqa(row: Row) -> QAExample:
    """``trivia_qa`` rc.nocontext: gold answers are ``answer.value`` and ``answer.aliases``."""
    answer = row.struct("answer")
    if not isinstance(answer.get("value"), str):
        row.fail("field 'answer' has no string 'value'")
    aliases = answer.get("aliases") or []
    if aliases:
        row.texts("answer.aliases", aliases)
    return QAExample(row.text("question"), _unique([answer["value"], *aliases]))


def nq_open(row: Row) -> QAExample:
    """``nq_open``: ``answer`` is a list of acceptable strings."""
    value = row.get("answer")
    answers = [value] if isinstance(value, str) else row.texts("answer")
    return QAExample(row.text("question"), _unique(answers))


def hotpotqa(row: Row) -> QAExample:
    """``hotpot_qa`` (distractor), closed book: the question and its single answer string."""
    return QAExample(row.text("question"), (row.text("answer"),))


def webquestions(row: Row) -> QAExample:
    """``web_questions``: ``answers`` is a list of strings."""
    return QAExample(row.text("question"), _unique(row.texts("answers")))


def complexwebquestions(row: Row) -> QAExample:
    """``drt/complex_web_questions``: ``answers`` holds {answer, aliases}; every alias is a gold answer."""
    golds: list[str] = []
    for record in _records(row, "answers", ("answer", "aliases")):
        if not isinstance(record.get("answer"), str):
            row.fail("field 'answers' has an entry without a string 'answer'")
        golds.append(record["answer"])
        golds.extend(a for a in (record.get("aliases") or []) if isinstance(a, str))
    return QAExample(row.text("question"), _unique(golds))


# ---------------------------------------------------------------- commonsense


def _multiple_choice(row: Row, query: str, choices: list[str], gold: int, field: str) -> ChoiceExample:
    if not 0 <= gold < len(choices):
        row.fail(f"field '{field}' points at choice {gold}, but there are {len(choices)} choices")
    return ChoiceExample(query, (query,) * len(choices), tuple(" " + c for c in choices), gold)


def _lettered(row: Row, query: str) -> ChoiceExample:
    """ARC / CommonsenseQA / OpenBookQA: ``choices`` {text, label} and an ``answerKey`` among the labels."""
    records = _records(row, "choices", ("text", "label"))
    labels = [str(r["label"]).strip() for r in records]
    texts = row.texts("choices.text", [r["text"] for r in records])
    key = row.text("answerKey").strip()
    if key not in labels:
        # ARC mixes "1".."4" and "A".."E" labelling across rows; a key in the other style still names a position.
        other = {**{str(i + 1): chr(ord("A") + i) for i in range(8)}, **{chr(ord("A") + i): str(i + 1) for i in range(8)}}
        key = other.get(key, key)
    if key not in labels:
        row.fail(f"field 'answerKey' {row.data['answerKey']!r} is not one of the choice labels {labels}")
    return _multiple_choice(row, query, texts, labels.index(key), "answerKey")


def arc(row: Row) -> ChoiceExample:
    """``allenai/ai2_arc`` (ARC-Easy and ARC-Challenge)."""
    return _lettered(row, f"Question: {row.text('question')}\nAnswer:")


def commonsense_qa(row: Row) -> ChoiceExample:
    """``tau/commonsense_qa``, scored as a cloze over the answer texts (ours: small models cannot do letters)."""
    return _lettered(row, f"Question: {row.text('question').strip()}\nAnswer:")


def openbookqa(row: Row) -> ChoiceExample:
    """``allenai/openbookqa`` main: the bare ``question_stem`` is the context."""
    return _lettered(row, row.text("question_stem"))


def _hellaswag_clean(text: str) -> str:
    # Bracketed tags such as "[header]" and "[title]" are WikiHow scraping artifacts, not text.
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ").strip()


def hellaswag(row: Row) -> ChoiceExample:
    """``Rowan/hellaswag``: the harness's context (activity label, ctx_a, capitalized ctx_b) when those fields
    are present, else ``ctx``; endings cleaned of bracketed artifacts."""
    if row.has("ctx_a") and row.has("ctx_b") and row.has("activity_label"):
        ctx = f"{row.text('activity_label')}: {row.text('ctx_a')} {row.text('ctx_b').capitalize()}"
    else:
        ctx = row.text("ctx")
    endings = [_hellaswag_clean(e) for e in row.texts("endings")]
    return _multiple_choice(row, _hellaswag_clean(ctx), endings, row.integer("label"), "label")


def piqa(row: Row) -> ChoiceExample:
    """``piqa``: a goal and two solutions, ``label`` 0 or 1."""
    return _multiple_choice(row, f"Question: {row.text('goal')}\nAnswer:", [row.text("sol1"), row.text("sol2")],
                            row.integer("label"), "label")


def sciq(row: Row) -> ChoiceExample:
    """``allenai/sciq``: three distractors then the correct answer (gold is the fourth choice, as in the harness)."""
    support = row.data.get("support") or ""
    query = f"Question: {row.text('question')}\nAnswer:"
    if isinstance(support, str) and support.strip():
        query = f"{support.lstrip()}\n{query}"
    choices = [row.text("distractor1"), row.text("distractor2"), row.text("distractor3"), row.text("correct_answer")]
    return _multiple_choice(row, query, choices, 3, "correct_answer")


def siqa(row: Row) -> ChoiceExample:
    """``social_i_qa``: context and question, answers A/B/C, ``label`` "1".."3"."""
    query = f"Q: {row.text('context')} {row.text('question')}\nA:"
    choices = [row.text("answerA"), row.text("answerB"), row.text("answerC")]
    return _multiple_choice(row, query, choices, row.integer("label") - 1, "label")


def winogrande(row: Row) -> ChoiceExample:
    """``winogrande``, partial scoring: each option fills the blank in the context; the shared continuation is
    the rest of the sentence, whose log-likelihood decides."""
    sentence = row.text("sentence")
    blank = sentence.find("_")
    if blank < 0:
        row.fail("field 'sentence' has no '_' blank to fill")
    options = [row.text("option1"), row.text("option2")]
    answer = str(row.get("answer")).strip()
    if answer not in ("1", "2"):
        row.fail(f"field 'answer' should be \"1\" or \"2\", got {row.data['answer']!r}")
    rest = " " + sentence[blank + 1:].strip()
    return ChoiceExample(sentence, tuple(sentence[:blank] + o for o in options), (rest, rest), int(answer) - 1)


# ---------------------------------------------------------------- math


def _number_text(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)


def gsm8k(row: Row) -> MathExample:
    """``openai/gsm8k`` main: the gold answer follows ``####``; the worked solution loses its calculator
    annotations and ends "The answer is X." like the chain-of-thought exemplars."""
    answer = row.text("answer")
    if "####" not in answer:
        row.fail("field 'answer' has no '#### <number>' final answer")
    work, final = answer.rsplit("####", 1)
    final = final.strip().replace(",", "")
    work = " ".join(re.sub(r"<<[^>]*>>", "", work).split())
    return MathExample(row.text("question"), final, f"{work} The answer is {final}.")


def gsm_hard(row: Row) -> MathExample:
    """``reasoning-machines/gsm-hard``: ``input`` problem, numeric ``target``."""
    return MathExample(row.text("input"), _number_text(row.number("target")))


def svamp(row: Row) -> MathExample:
    """``ChilleD/SVAMP``: the problem is ``Body`` then ``Question``; numeric ``Answer``."""
    problem = f"{row.text('Body').strip()} {row.text('Question').strip()}"
    return MathExample(problem, _number_text(row.number("Answer")))


def _boxed_solution(row: Row) -> tuple[str, str]:
    solution = row.text("solution")
    answer = last_boxed(solution)
    if answer is None:
        row.fail("field 'solution' has no \\boxed{...} final answer")
    return solution, answer


def hendrycks_math(row: Row) -> MathExample:
    """``hendrycks_math`` / ``competition_math``: the gold answer is the last ``\\boxed{}`` of ``solution``."""
    solution, answer = _boxed_solution(row)
    return MathExample(row.text("problem"), answer, solution)


def minerva_math(row: Row) -> MathExample:
    """The same MATH rows, with the gold answer passed through Minerva's normalization."""
    solution, answer = _boxed_solution(row)
    return MathExample(row.text("problem"), minerva_normalize(answer), solution)
