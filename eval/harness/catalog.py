"""The paper's benchmarks (5 world knowledge, 9 commonsense, 5 math) as lm-evaluation-harness tasks: which
lm-eval task (or repo-defined task YAML) each one is, its category, the fields its local files must carry, its
headline metric and the paper's few-shot count.

lm-eval owns prompts, few-shot sampling, metrics and filters; this table only says which of its tasks to run
and where the local files are. It exists because lm-eval has no notion of the paper's categories or of
reading a benchmark from <bench-dir>/<name>/<split>.{jsonl,parquet}.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError

CATEGORIES = ("world_knowledge", "commonsense", "math")
REPO_TASKS = Path(__file__).resolve().parent.parent / "tasks"  # eval/tasks: the four tasks lm-eval lacks
# MATH's seven subjects: lm-eval's subtask suffix -> the `type` value of a row in the public schema.
from ds_parrots_eval.tasks.utils import SUBJECTS as MATH_SUBJECTS  # noqa: E402


@dataclass(frozen=True)
class Benchmark:
    """One of the paper's benchmarks and the lm-eval task(s) that score it."""

    name: str
    """Our name (--tasks) and the folder under --bench-dir."""
    category: str
    """world_knowledge, commonsense or math."""
    yaml: str
    """lm-eval's task YAML, relative to lm_eval/tasks ('repo:' prefix: one of eval/tasks/*.yaml). For MATH a
    pattern with {subject}."""
    fields: dict[str, str]
    """Fields every row must carry and their kind (str, int, list, struct, number, any): checked before
    lm-eval runs, so a bad row is one line naming the file, the row and the field, not a Jinja traceback."""
    metric: str
    """The headline metric, as lm-eval keys it ('metric,filter')."""
    few_shot: int
    """The paper's few-shot count (the default of --few-shot)."""
    dirs: tuple[str, ...] = ()
    """Folders tried under --bench-dir; empty: (name,)."""
    subjects: bool = False
    """MATH: one lm-eval task per subject, each reading the rows of its `type` from the same files."""

    @property
    def folders(self) -> tuple[str, ...]:
        return self.dirs or (self.name,)

    def yaml_path(self, subject: Optional[str] = None) -> Path:
        """The YAML this benchmark's (subject's) generated task includes."""
        rel = self.yaml.format(subject=subject)
        if rel.startswith("repo:"):
            return REPO_TASKS / rel[len("repo:") :]
        import lm_eval.tasks

        return Path(lm_eval.tasks.__file__).resolve().parent / rel

    def lm_eval_tasks(self) -> list[str]:
        """The lm-eval task names this benchmark runs (MATH: one per subject)."""
        if self.subjects:
            stem = Path(self.yaml).stem.replace("{subject}", "")
            return [f"{stem}{s}" for s in MATH_SUBJECTS]
        return [self.task_name]

    @property
    def task_name(self) -> str:
        import yaml as pyyaml

        text = self.yaml_path().read_text()
        # Not yaml.safe_load of the whole file: lm-eval YAMLs carry !function tags.
        return next(pyyaml.safe_load(line)["task"] for line in text.splitlines() if line.startswith("task:"))


_ARC = {"question": "str", "choices": "struct", "answerKey": "str"}
_MATH = {"problem": "str", "solution": "str", "type": "str"}
_QA = "exact_match,remove_whitespace"
_GSM = "exact_match,strict-match"

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "triviaqa",
            "world_knowledge",
            "triviaqa/default.yaml",
            {"question": "str", "answer": "struct"},
            _QA,
            5,
        ),
        Benchmark(
            "nq_open",
            "world_knowledge",
            "nq_open/nq_open.yaml",
            {"question": "str", "answer": "list"},
            _QA,
            5,
        ),
        Benchmark(
            "hotpotqa", "world_knowledge", "repo:hotpotqa.yaml", {"question": "str", "answer": "str"}, _QA, 5
        ),
        Benchmark(
            "webquestions",
            "world_knowledge",
            "webqs/webqs.yaml",
            {"question": "str", "answers": "list"},
            "exact_match,none",
            5,
        ),
        Benchmark(
            "complexwebquestions",
            "world_knowledge",
            "repo:complexwebquestions.yaml",
            {"question": "str", "answers": "any"},
            _QA,
            5,
        ),
        Benchmark("arc_easy", "commonsense", "arc/arc_easy.yaml", _ARC, "acc_norm,none", 0),
        Benchmark("arc_challenge", "commonsense", "arc/arc_challenge.yaml", _ARC, "acc_norm,none", 0),
        Benchmark("commonsense_qa", "commonsense", "commonsense_qa/default.yaml", _ARC, "acc,none", 0),
        Benchmark(
            "hellaswag",
            "commonsense",
            "hellaswag/hellaswag.yaml",
            {"activity_label": "str", "ctx_a": "str", "ctx_b": "str", "endings": "list", "label": "int"},
            "acc_norm,none",
            0,
        ),
        Benchmark(
            "openbookqa",
            "commonsense",
            "openbookqa/openbookqa.yaml",
            {"question_stem": "str", "choices": "struct", "answerKey": "str"},
            "acc_norm,none",
            0,
        ),
        Benchmark(
            "piqa",
            "commonsense",
            "piqa/piqa.yaml",
            {"goal": "str", "sol1": "str", "sol2": "str", "label": "int"},
            "acc_norm,none",
            0,
        ),
        Benchmark(
            "sciq",
            "commonsense",
            "sciq/sciq.yaml",
            {
                "support": "str",
                "question": "str",
                "distractor1": "str",
                "distractor2": "str",
                "distractor3": "str",
                "correct_answer": "str",
            },
            "acc_norm,none",
            0,
        ),
        Benchmark(
            "siqa",
            "commonsense",
            "siqa/siqa.yaml",
            {
                "context": "str",
                "question": "str",
                "answerA": "str",
                "answerB": "str",
                "answerC": "str",
                "label": "int",
            },
            "acc,none",
            0,
        ),
        Benchmark(
            "winogrande",
            "commonsense",
            "winogrande/default.yaml",
            {"sentence": "str", "option1": "str", "option2": "str", "answer": "int"},
            "acc,none",
            0,
        ),
        Benchmark("gsm8k", "math", "gsm8k/gsm8k.yaml", {"question": "str", "answer": "str"}, _GSM, 8),
        Benchmark("gsm_hard", "math", "repo:gsm_hard.yaml", {"input": "str", "target": "number"}, _GSM, 8),
        Benchmark(
            "hendrycks_math",
            "math",
            "hendrycks_math/hendrycks_math_{subject}.yaml",
            _MATH,
            "exact_match,none",
            4,
            dirs=("hendrycks_math", "math"),
            subjects=True,
        ),
        Benchmark(
            "minerva_math",
            "math",
            "minerva_math/minerva_math_{subject}.yaml",
            _MATH,
            "exact_match,none",
            4,
            dirs=("minerva_math", "hendrycks_math", "math"),
            subjects=True,
        ),
        Benchmark(
            "svamp",
            "math",
            "repo:svamp.yaml",
            {"Body": "str", "Question": "str", "Answer": "number"},
            _GSM,
            8,
        ),
    )
}


def get(name: str) -> Benchmark:
    """The benchmark called `name`; a one-line error listing the known ones otherwise."""
    if name not in BENCHMARKS:
        raise ConfigError(
            f"unknown benchmark '{name}'; known: {', '.join(BENCHMARKS)}, or a category: "
            f"{', '.join(CATEGORIES)}, all"
        )
    return BENCHMARKS[name]


def expand(names: Sequence[str]) -> list[str]:
    """Benchmark names with categories (world_knowledge, commonsense, math, all) expanded, in order, once."""
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for name in names:
        if name == "all":
            members = list(BENCHMARKS)
        elif name in CATEGORIES:
            members = [b.name for b in BENCHMARKS.values() if b.category == name]
        else:
            members = [get(name).name]
        out.extend(m for m in members if m not in out)
    if not out:
        raise ConfigError(f"no benchmarks selected; pass names or a category ({', '.join(CATEGORIES)}, all)")
    return out


def few_shot_counts(names: list[str], spec: Optional[dict[str, int]]) -> dict[str, int]:
    """Each benchmark's few-shot count: the paper's, overridden by `spec`, whose keys are benchmark names,
    categories or 'all' (a name beats its category, which beats 'all')."""
    counts = {n: get(n).few_shot for n in names}
    rank = {"all": 0, **{c: 1 for c in CATEGORIES}}
    for key in sorted(spec or {}, key=lambda k: rank.get(k, 2)):
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"few-shot count for '{key}' must be an integer >= 0, got {value!r}")
        if key not in rank and key not in BENCHMARKS:
            raise ConfigError(
                f"few-shot count given for unknown benchmark '{key}'; known: {', '.join(BENCHMARKS)}, "
                f"or a category: {', '.join(CATEGORIES)}, all"
            )
        counts.update({m: value for m in expand([key]) if m in counts})
    return counts
