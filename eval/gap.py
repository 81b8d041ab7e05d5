"""The generalization gap: the same math scorer on a benchmark's training problems and on its test problems.

A model that memorized its training data scores higher on the training problems than on unseen ones; the paper
compares this gap between MoE and dense models on GSM8k and MATH.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ds_parrots.errors import ConfigError

from .benchmarks.registry import get
from .benchmarks.runner import few_shot_counts, evaluate_task, pick_shots
from .lm import LanguageModel

TRAIN_SPLIT = "train"


def run_gap(lm: LanguageModel, bench_dir: Path, tasks: Sequence[str] = ("gsm8k", "math"), limit: Optional[int] = None,
            few_shot: Optional[dict[str, int]] = None, rank: int = 0, world_size: int = 1, progress: bool = True,
            batch_size: int = 32) -> dict:
    """Accuracy on the training split minus accuracy on the test split, per math task.

    `tasks` are benchmark names ("math" is the MATH task here, not the category). Both splits use the same
    exemplars, and training problems equal to an exemplar are not scored. Returns
    {task: {"train", "test", "gap", "n_train", "n_test", "few_shot"}}.
    """
    if isinstance(tasks, str):
        tasks = [tasks]
    names = [get(t).name for t in tasks]
    for name in names:
        if get(name).category != "math":
            raise ConfigError(f"the generalization gap is measured on math benchmarks; '{name}' is "
                              f"{get(name).category}")
        if get(name).eval_split == TRAIN_SPLIT:
            raise ConfigError(f"'{name}' has no test split apart from its training split, so it has no gap")
    counts = few_shot_counts(names, few_shot)
    report = {}
    for name in names:
        bench = get(name)
        shots = pick_shots(bench, Path(bench_dir), counts[name])
        scored = {split: evaluate_task(lm, bench, Path(bench_dir), split, shots, limit, rank, world_size, progress,
                                       batch_size)
                  for split in (TRAIN_SPLIT, bench.eval_split)}
        train, test = scored[TRAIN_SPLIT], scored[bench.eval_split]
        report[name] = {"train": train["metrics"]["acc"], "test": test["metrics"]["acc"],
                        "gap": train["metrics"]["acc"] - test["metrics"]["acc"],
                        "n_train": train["n"], "n_test": test["n"], "few_shot": counts[name]}
    return report
