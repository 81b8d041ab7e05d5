"""Run benchmark suites on a LanguageModel: per-task scores, per-category means, data-parallel over ranks."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional, Sequence

from tqdm import tqdm

from ds_parrots.errors import ConfigError

from ..lm import LanguageModel
from .examples import Example
from .registry import BENCHMARKS, CATEGORIES, Benchmark, expand, get
from .rows import row_count
from .scoring import Metrics, score_examples

FEW_SHOT_SEED = 1234  # lm-evaluation-harness's default sampler seed


def available_tasks() -> list[str]:
    """Every benchmark name, in registry order (categories and "all" are accepted on top of these)."""
    return list(BENCHMARKS)


def pick_shots(bench: Benchmark, bench_dir: Path, n: int) -> list[Example]:
    """The `n` exemplars of `bench`: its first n built-in ones, or n rows sampled (seeded) from its few-shot split."""
    if n < 0:
        raise ConfigError(f"few-shot count for '{bench.name}' must be >= 0, got {n}")
    if n == 0:
        return []
    if bench.fixed_shots:
        if n > len(bench.fixed_shots):
            raise ConfigError(f"'{bench.name}' uses its {len(bench.fixed_shots)} standard exemplars; "
                              f"few-shot {n} is more than there are")
        return list(bench.fixed_shots[:n])
    path = bench.split_path(bench_dir, bench.few_shot_split)
    count = row_count(path)
    if n > count:
        raise ConfigError(f"few-shot {n} for '{bench.name}' but {path} has only {count} rows")
    # Seeded per task: the same exemplars on every rank and every run, and independent of which tasks run.
    indices = random.Random(f"{bench.name}/{FEW_SHOT_SEED}").sample(range(count), n)
    return bench.load(bench_dir, bench.few_shot_split, indices)


def _check_parallel(rank: int, world_size: int, batch_size: int, limit: Optional[int]) -> bool:
    """Validate the arguments; True when results must be gathered over an initialized process group."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} is not in a world of size {world_size}")
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1 (or unset), got {limit}")
    import torch.distributed as dist

    if world_size == 1 or not (dist.is_available() and dist.is_initialized()):
        return False
    if dist.get_world_size() != world_size or dist.get_rank() != rank:
        raise ConfigError(f"rank {rank} / world size {world_size} disagree with the process group "
                          f"(rank {dist.get_rank()} of {dist.get_world_size()})")
    return True


def _gather(local: list[Metrics], rank: int, world_size: int, gather: bool) -> list[Metrics]:
    """All ranks' per-example results back in example order (rank r scored examples r, r + W, ...)."""
    if not gather:
        return local
    import torch.distributed as dist

    parts: list = [None] * world_size
    dist.all_gather_object(parts, local)
    merged: list = [None] * sum(len(p) for p in parts)
    for r, part in enumerate(parts):
        merged[r::world_size] = part
    return merged


def _mean(results: list[Metrics], names: Sequence[str]) -> Metrics:
    # NaN, not an error, for a rank left without rows when there is no process group to gather over.
    return {k: sum(r[k] for r in results) / len(results) if results else float("nan") for k in names}


def evaluate_task(lm: LanguageModel, bench: Benchmark, bench_dir: Path, split: str, shots: Sequence[Example],
                  limit: Optional[int] = None, rank: int = 0, world_size: int = 1, progress: bool = True,
                  batch_size: int = 32) -> dict:
    """Score one split of one benchmark with the given exemplars.

    Rows equal to an exemplar are dropped from the scored set (a prompt never contains its own answer),
    then the first `limit` rows are kept and rank r scores rows r, r + world_size, ...; with an initialized
    process group every rank returns the metrics of all rows, without one only those of its own rows.
    Returns {"metrics": {name: mean over the rows}, "n": rows scored}.
    """
    gather = _check_parallel(rank, world_size, batch_size, limit)
    exemplar_keys = {s.key for s in shots}
    examples = [e for e in bench.load(bench_dir, split) if e.key not in exemplar_keys][:limit]
    if not examples:
        raise ConfigError(f"'{bench.name}' split '{split}' has no rows left to score once the few-shot "
                          "exemplars are excluded")
    shard = examples[rank::world_size]
    with tqdm(total=len(shard), desc=f"{bench.name}:{split}", disable=not (progress and rank == 0),
              dynamic_ncols=True) as bar:
        local = score_examples(lm, bench, shots, shard, batch_size, on_batch=bar.update)
    results = _gather(local, rank, world_size, gather)
    return {"metrics": _mean(results, bench.metric_names), "n": len(results)}


def _specificity(key: str) -> int:
    return 0 if key == "all" else 1 if key in CATEGORIES else 2


def few_shot_counts(names: list[str], few_shot: Optional[dict[str, int]]) -> dict[str, int]:
    """The exemplar count of each task in `names`: its default, overridden by `few_shot`, whose keys may be
    task names, categories or "all" (a task name beats its category, which beats "all")."""
    counts = {name: get(name).few_shot for name in names}
    for key in sorted(few_shot or {}, key=_specificity):
        value = few_shot[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"few-shot count for '{key}' must be an integer >= 0, got {value!r}")
        try:
            members = expand([key])
        except ConfigError:
            raise ConfigError(f"few-shot count given for unknown benchmark '{key}'; known: "
                              f"{', '.join(BENCHMARKS)}, or a category: {', '.join(CATEGORIES)}, all") from None
        counts.update({m: value for m in members if m in counts})
    return counts


def run_benchmarks(lm: LanguageModel, tasks: list[str], bench_dir: Path, few_shot: Optional[dict[str, int]] = None,
                   limit: Optional[int] = None, rank: int = 0, world_size: int = 1, progress: bool = True,
                   batch_size: int = 32) -> dict:
    """Score `lm` on `tasks` (benchmark names or categories) read from `bench_dir`.

    Returns {"tasks": {name: {"category", "metric", "score", "metrics", "n", "few_shot", "split"}},
    "categories": {category: mean score of its tasks that ran}}. `few_shot` overrides per-task exemplar
    counts; `limit` caps the rows scored per task. Data-parallel: see evaluate_task.
    """
    names = expand(tasks)
    counts = few_shot_counts(names, few_shot)
    report: dict = {"tasks": {}, "categories": {}}
    for name in names:
        bench = get(name)
        shots = pick_shots(bench, Path(bench_dir), counts[name])
        result = evaluate_task(lm, bench, Path(bench_dir), bench.eval_split, shots, limit, rank, world_size,
                               progress, batch_size)
        report["tasks"][name] = {"category": bench.category, "metric": bench.metric,
                                 "score": result["metrics"][bench.metric], "metrics": result["metrics"],
                                 "n": result["n"], "few_shot": counts[name], "split": bench.eval_split}
    for category in CATEGORIES:
        scores = [t["score"] for t in report["tasks"].values() if t["category"] == category]
        if scores:
            report["categories"][category] = sum(scores) / len(scores)
    return report
