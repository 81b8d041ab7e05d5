"""The generalization gap: the same lm-eval task scored on a benchmark's training problems and on its test
problems, reported as train - test (the paper compares it between MoE and dense models on GSM8k and MATH).

The training split is scored by a copy of the task whose test split is 'train' (named <task>_train); lm-eval
draws its exemplars from the same split and leaves the scored problem out of its own prompt."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError

from .harness.catalog import few_shot_counts, get
from .harness.run import _score, evaluate_tasks
from .harness.task_files import plan

TRAIN_SPLIT = "train"
GAP_TASKS = (
    "gsm8k",
    "hendrycks_math",
    "minerva_math",
    "svamp",
)  # math benchmarks with a separate train split


def run_gap(
    lm,
    bench_dir: Path,
    tasks: Sequence[str] = ("gsm8k", "hendrycks_math"),
    limit: Optional[int] = None,
    few_shot: Optional[dict[str, int]] = None,
    bootstrap_iters: int = 100000,
) -> Optional[dict]:
    """{task: {"train", "test", "gap", "n_train", "n_test", "few_shot", "metric"}}."""
    names = [get(t).name for t in tasks]
    for name in names:
        if name not in GAP_TASKS:
            raise ConfigError(
                f"the generalization gap is measured on math benchmarks with a training split "
                f"({', '.join(GAP_TASKS)}); not '{name}'"
            )
    counts = few_shot_counts(names, few_shot)
    test = plan(names, Path(bench_dir), counts)
    train = plan(names, Path(bench_dir), counts, eval_split=TRAIN_SPLIT, suffix="_train")
    results = evaluate_tasks(lm, test + train, limit, False, bootstrap_iters)
    if results is None:
        return None
    report = {}
    for name in names:
        metric = get(name).metric
        s_test, _, n_test = _score(results, [t for t in test if t.benchmark == name], metric)
        s_train, _, n_train = _score(results, [t for t in train if t.benchmark == name], metric)
        report[name] = {
            "train": s_train,
            "test": s_test,
            "gap": s_train - s_test,
            "n_train": n_train,
            "n_test": n_test,
            "few_shot": counts[name],
            "metric": metric,
        }
    return report
