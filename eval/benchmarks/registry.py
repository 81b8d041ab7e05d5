"""The paper's benchmark suites: for each benchmark its category, splits, few-shot default, reader and limits.

Splits follow lm-evaluation-harness where it has the task: the labelled split it scores (validation when the
test labels are hidden), and the training split for sampled exemplars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from ds_parrots.errors import ConfigError

from . import readers
from .examples import Example, MathExample
from .exemplars import GSM8K_COT, MINERVA_MATH
from .rows import Row, find_split, read_rows

CATEGORIES = ("world_knowledge", "commonsense", "math")
METRICS = {"world_knowledge": "em", "commonsense": "acc_norm", "math": "acc"}
METRIC_NAMES = {"world_knowledge": ("em", "f1"), "commonsense": ("acc", "acc_norm"), "math": ("acc",)}

# The harness stops closed-book answers at the first newline, period or comma.
QA_STOP = ("\n", ".", ",")
COT_STOP = ("Q:", "\n\n")
MATH_STOP = ("Problem:",)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: where its rows live, how they are read, prompted and scored."""

    name: str
    """Registry name; also the folder under the bench dir."""
    title: str
    """Human name used in error messages."""
    category: str
    """"world_knowledge", "commonsense" or "math"."""
    style: str
    """Prompt style (see prompts.py): "qa", "choice", "cot", "math" or "minerva"."""
    reader: Callable[[Row], Example]
    """Turns one row of the public schema into an Example."""
    fields: tuple[str, ...]
    """The fields rows must carry, quoted when one is missing."""
    eval_split: str
    """The split scored by default."""
    few_shot_split: str = "train"
    """Where sampled exemplars come from."""
    few_shot: int = 0
    """Default number of exemplars."""
    fixed_shots: tuple[MathExample, ...] = ()
    """Built-in exemplars used instead of sampled ones (the first n of them)."""
    max_new_tokens: int = 0
    """Generation budget for generative tasks."""
    stop: tuple[str, ...] = ()
    """Generation stops before the first of these."""
    dirs: tuple[str, ...] = field(default=())
    """Folders tried in order under the bench dir; empty means (name,)."""

    @property
    def metric(self) -> str:
        """The headline metric reported as the task's score."""
        return METRICS[self.category]

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Every metric reported for the task."""
        return METRIC_NAMES[self.category]

    @property
    def schema(self) -> str:
        """What every row must hold, in words, for error messages."""
        return f"{self.title} rows need {', '.join(self.fields)}"

    def split_path(self, bench_dir: Path, split: str) -> Path:
        """The file holding `split` (ConfigError naming the expected paths if none exists)."""
        return find_split(Path(bench_dir), self.dirs or (self.name,), split, self.name)

    def load(self, bench_dir: Path, split: str, indices: Optional[Sequence[int]] = None) -> list[Example]:
        """Read `split` (or only its 0-based `indices`) into Examples; bad rows raise ConfigError."""
        path = self.split_path(bench_dir, split)
        rows = read_rows(path, indices)
        if not rows and indices is None:
            raise ConfigError(f"{path} has no rows ({self.schema})")
        return [self.reader(Row(data, path, number, self.schema)) for number, data in rows]


def _qa(name: str, title: str, reader, fields, eval_split: str) -> Benchmark:
    return Benchmark(name, title, "world_knowledge", "qa", reader, fields, eval_split, few_shot=5,
                     max_new_tokens=32, stop=QA_STOP)


def _mc(name: str, title: str, reader, fields, eval_split: str, dirs: tuple[str, ...] = ()) -> Benchmark:
    return Benchmark(name, title, "commonsense", "choice", reader, fields, eval_split, dirs=dirs)


_ARC_FIELDS = ("question", "choices", "answerKey")
_GSM_STYLE = dict(style="cot", fixed_shots=GSM8K_COT, few_shot=8, max_new_tokens=256, stop=COT_STOP)
_MATH_STYLE = dict(fixed_shots=MINERVA_MATH, few_shot=4, max_new_tokens=512, stop=MATH_STOP)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    _qa("triviaqa", "TriviaQA", readers.triviaqa, ("question", "answer"), "validation"),
    _qa("nq_open", "NaturalQuestions-open", readers.nq_open, ("question", "answer"), "validation"),
    _qa("hotpotqa", "HotpotQA", readers.hotpotqa, ("question", "answer"), "validation"),
    _qa("webquestions", "WebQuestions", readers.webquestions, ("question", "answers"), "test"),
    _qa("complexwebquestions", "ComplexWebQuestions", readers.complexwebquestions, ("question", "answers"),
        "validation"),
    _mc("arc_easy", "ARC-Easy", readers.arc, _ARC_FIELDS, "test"),
    _mc("arc_challenge", "ARC-Challenge", readers.arc, _ARC_FIELDS, "test"),
    _mc("commonsense_qa", "CommonsenseQA", readers.commonsense_qa, _ARC_FIELDS, "validation"),
    _mc("hellaswag", "HellaSwag", readers.hellaswag, ("ctx (or activity_label, ctx_a, ctx_b)", "endings", "label"),
        "validation"),
    _mc("openbookqa", "OpenBookQA", readers.openbookqa, ("question_stem", "choices", "answerKey"), "test"),
    _mc("piqa", "PIQA", readers.piqa, ("goal", "sol1", "sol2", "label"), "validation"),
    _mc("sciq", "SciQ", readers.sciq, ("question", "distractor1", "distractor2", "distractor3", "correct_answer"),
        "test"),
    _mc("siqa", "SIQA", readers.siqa, ("context", "question", "answerA", "answerB", "answerC", "label"),
        "validation"),
    _mc("winogrande", "WinoGrande", readers.winogrande, ("sentence", "option1", "option2", "answer"), "validation"),
    Benchmark("gsm8k", "GSM8k", "math", reader=readers.gsm8k, fields=("question", "answer"), eval_split="test",
              **_GSM_STYLE),
    # GSM-Hard is published as a single split, named train.
    Benchmark("gsm_hard", "GSM-Hard", "math", reader=readers.gsm_hard, fields=("input", "target"),
              eval_split="train", **_GSM_STYLE),
    Benchmark("math", "MATH", "math", style="math", reader=readers.hendrycks_math, fields=("problem", "solution"),
              eval_split="test", **_MATH_STYLE),
    Benchmark("minerva_math", "Minerva-MATH", "math", style="minerva", reader=readers.minerva_math,
              fields=("problem", "solution"), eval_split="test", dirs=("minerva_math", "math"), **_MATH_STYLE),
    Benchmark("svamp", "SVAMP", "math", reader=readers.svamp, fields=("Body", "Question", "Answer"),
              eval_split="test", **_GSM_STYLE),
)}

# "math" is both a task and a category; as a category it wins in task lists, so the task alone has this alias.
ALIASES = {"hendrycks_math": "math"}


def get(name: str) -> Benchmark:
    """The benchmark called `name` (or an alias); ConfigError listing the known ones otherwise."""
    bench = BENCHMARKS.get(ALIASES.get(name, name))
    if bench is None:
        raise ConfigError(f"unknown benchmark '{name}'; known: {', '.join(BENCHMARKS)}")
    return bench


def expand(names: Sequence[str]) -> list[str]:
    """Task names with categories ("world_knowledge", "commonsense", "math", "all") expanded, duplicates dropped.

    "math" means the category (which includes the MATH task); "hendrycks_math" selects the MATH task alone.
    """
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for name in names:
        if name == "all":
            members = list(BENCHMARKS)
        elif name in CATEGORIES:
            members = [b.name for b in BENCHMARKS.values() if b.category == name]
        elif ALIASES.get(name, name) in BENCHMARKS:
            members = [ALIASES.get(name, name)]
        else:
            raise ConfigError(f"unknown benchmark '{name}'; known: {', '.join(BENCHMARKS)}, "
                              f"or a category: {', '.join(CATEGORIES)}, all")
        out.extend(m for m in members if m not in out)
    if not out:
        raise ConfigError("no benchmarks selected; pass task names or a category "
                          f"({', '.join(CATEGORIES)}, all)")
    return out
