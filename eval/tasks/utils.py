"""Functions the repo's task YAMLs name (`!function utils.x`), and the MATH subject filters of the generated
tasks (`!function ds_parrots_eval.tasks.utils.hendrycks_algebra`, ...)."""

from __future__ import annotations

from pathlib import Path


def _number(value) -> str:
    """A numeric answer as GSM8k writes it: 12, not 12.0; 2.5 stays 2.5."""
    x = float(value)
    return str(int(x)) if x.is_integer() else repr(x)


def gsm_hard_target(doc: dict) -> str:
    return f"#### {_number(doc['target'])}"


def svamp_target(doc: dict) -> str:
    return f"#### {_number(doc['Answer'])}"


def cwq_targets(doc: dict) -> list[str]:
    """Every answer and alias of drt/complex_web_questions' `answers` (a list of {answer, aliases}; parquet
    stores it as a struct of lists), without duplicates."""
    answers = doc["answers"]
    if isinstance(answers, dict):
        answers = [dict(zip(answers, v)) for v in zip(*answers.values())]
    out: list[str] = []
    for a in answers:
        for text in [a.get("answer"), *(a.get("aliases") or [])]:
            if isinstance(text, str) and text.strip() and text not in out:
                out.append(text)
    return out


# MATH: the public schema (hendrycks/competition_math) keeps all seven subjects in one file, with the subject
# in `type`; lm-eval's subject tasks read EleutherAI/hendrycks_math's per-subject configs. The generated
# tasks keep lm-eval's own process_docs and run it on the rows of their subject.
SUBJECTS = {
    "algebra": "Algebra",
    "counting_and_prob": "Counting & Probability",
    "geometry": "Geometry",
    "intermediate_algebra": "Intermediate Algebra",
    "num_theory": "Number Theory",
    "prealgebra": "Prealgebra",
    "precalc": "Precalculus",
}


def _lm_eval_process_docs(family: str):
    import lm_eval.tasks
    from lm_eval.tasks._yaml_loader import _load_module_with_cache

    path = Path(lm_eval.tasks.__file__).parent / f"{family}_math" / "utils.py"
    return _load_module_with_cache(path).process_docs


def _subject_docs(family: str, subject: str):
    def process_docs(dataset):
        rows = dataset.filter(lambda d: d["type"] == SUBJECTS[subject])
        return _lm_eval_process_docs(family)(rows)

    process_docs.__name__ = f"{family}_{subject}"
    return process_docs


for _family in ("hendrycks", "minerva"):
    for _subject in SUBJECTS:
        globals()[f"{_family}_{_subject}"] = _subject_docs(_family, _subject)
