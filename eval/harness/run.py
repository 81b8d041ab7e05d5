"""Run benchmarks through lm-evaluation-harness (lm_eval.simple_evaluate) and shape its results for our files:
per task the headline score, per category the mean (the paper's categories), next to lm-eval's own results,
configs, versions, few-shot counts and seeds."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError

from .catalog import CATEGORIES, expand, few_shot_counts, get
from .task_files import TaskFile, plan, write

SEEDS = {"random_seed": 0, "numpy_random_seed": 1234, "torch_random_seed": 1234, "fewshot_random_seed": 1234}


def offline() -> None:
    """Nothing is downloaded: datasets and the Hub client refuse the network (files are local anyway)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@contextlib.contextmanager
def quiet(enabled: bool):
    """No progress bars or warnings from datasets and lm-eval (--no-progress, and ranks other than 0).

    lm-eval's request-building bar (lm_eval.api.task) has no switch, so its module's tqdm is swapped for a
    disabled one while this is active."""
    if not enabled:
        yield
        return
    import datasets
    import lm_eval.api.task as task_module

    was_bar, was_level = task_module.tqdm, logging.getLogger("lm_eval").level
    datasets.disable_progress_bars()
    task_module.tqdm = functools.partial(was_bar, disable=True)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    try:
        yield
    finally:
        task_module.tqdm = was_bar
        logging.getLogger("lm_eval").setLevel(was_level)
        datasets.enable_progress_bars()


def evaluate_tasks(
    lm,
    tasks: list[TaskFile],
    limit: Optional[int] = None,
    log_samples: bool = False,
    bootstrap_iters: int = 100000,
) -> Optional[dict]:
    """lm_eval.simple_evaluate on the generated tasks; lm-eval's result dict (on every rank:
    ParrotLM shards requests, not documents, so lm-eval runs whole on each)."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1 (or unset), got {limit}")
    offline()
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    with (
        tempfile.TemporaryDirectory(prefix="ds-parrots-tasks-") as folder,
        quiet(not getattr(lm, "progress", True)),
    ):
        write(tasks, Path(folder))
        manager = TaskManager(include_path=folder, include_defaults=False)
        return simple_evaluate(
            model=lm,
            tasks=[t.task for t in tasks],
            task_manager=manager,
            limit=limit,
            log_samples=log_samples,
            bootstrap_iters=bootstrap_iters,
            **SEEDS,
        )


def _score(results: dict, tasks: list[TaskFile], metric: str) -> tuple[float, dict, int]:
    """(headline score, all metrics, documents) of one benchmark: MATH's subjects are pooled by size, as
    lm-eval's hendrycks_math group does (weight_by_size)."""
    n = {t.task: int(results["n-samples"][t.task]["effective"]) for t in tasks}
    total = sum(n.values())
    metrics: dict = {}
    for t in tasks:
        for key, value in results["results"][t.task].items():
            if (
                "," in key and "_stderr" not in key and isinstance(value, (int, float))
            ):  # 'metric,filter' keys
                metrics[key] = metrics.get(key, 0.0) + value * n[t.task] / max(total, 1)
    if metric not in metrics:
        raise ConfigError(
            f"lm-eval reported no '{metric}' for {tasks[0].benchmark}; it reported "
            f"{', '.join(sorted(metrics))}"
        )
    return float(metrics[metric]), {k: float(v) for k, v in metrics.items()}, total


def shape(results: dict, tasks: list[TaskFile]) -> dict:
    """{"tasks": {name: {category, metric, score, metrics, n, few_shot, split, lm_eval_tasks}}, "categories":
    {category: mean score of its benchmarks that ran}, "lm_eval": lm-eval's results, configs and versions}."""
    report: dict = {"tasks": {}, "categories": {}}
    for name in dict.fromkeys(t.benchmark for t in tasks):
        bench, mine = get(name), [t for t in tasks if t.benchmark == name]
        score, metrics, n = _score(results, mine, bench.metric)
        report["tasks"][name] = {
            "category": bench.category,
            "metric": bench.metric,
            "score": score,
            "metrics": metrics,
            "n": n,
            "few_shot": mine[0].few_shot,
            "split": mine[0].eval_split,
            "lm_eval_tasks": [t.task for t in mine],
        }
    for category in CATEGORIES:
        scores = [t["score"] for t in report["tasks"].values() if t["category"] == category]
        if scores:
            report["categories"][category] = sum(scores) / len(scores)
    keep = (
        "results",
        "configs",
        "versions",
        "n-shot",
        "n-samples",
        "higher_is_better",
        "config",
        "git_hash",
        "date",
        "total_evaluation_time_seconds",
    )
    report["lm_eval"] = {k: results[k] for k in keep if k in results}
    import lm_eval

    report["lm_eval"]["version"] = lm_eval.__version__
    report["lm_eval"]["seeds"] = SEEDS
    return report


def run_benchmarks(
    lm,
    names: list[str],
    bench_dir: Path,
    few_shot: Optional[dict[str, int]] = None,
    limit: Optional[int] = None,
    log_samples: bool = False,
    bootstrap_iters: int = 100000,
) -> tuple[Optional[dict], Optional[dict]]:
    """(our report, lm-eval's per-document samples or None), on every rank (rank 0 writes them)."""
    names = expand(names)
    tasks = plan(names, Path(bench_dir), few_shot_counts(names, few_shot))
    results = evaluate_tasks(lm, tasks, limit, log_samples, bootstrap_iters)
    if results is None:
        return None, None
    return shape(results, tasks), results.get("samples")
