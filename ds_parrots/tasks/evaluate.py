"""Scoring a task's held-out queries by greedy generation, data-parallel over ranks."""

from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist

from ds_parrots.models.generate import greedy_generate
from ds_parrots.parallel.sharding import lockstep_batches
from ds_parrots.tasks.base import Example, SyntheticTask


def evaluate_task(
    forward,
    task: SyntheticTask,
    device,
    batch_size: int,
    max_eval: Optional[int] = None,
    rank: int = 0,
    world_size: int = 1,
    examples: Optional[list[Example]] = None,
) -> dict:
    """Mean of each metric of `task.score` over the eval queries (or `examples`), and their count."""
    examples = list(task.eval_examples() if examples is None else examples)
    if max_eval is not None:
        examples = examples[:max_eval]
    sums: dict[str, float] = {}
    count = 0
    tok = task.tokenizer
    for chunk in lockstep_batches(examples, rank, world_size, batch_size):
        # A rank with fewer queries decodes a copy of the first one so that forwards stay in step.
        prompts = [e.prompt for e in chunk] or [examples[0].prompt]
        generated = greedy_generate(forward, prompts, task.max_answer_len, tok.pad_id, tok.eos_id, device)
        for e, g in zip(chunk, generated):
            for k, v in task.score(e, g).items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
    keys = sorted(sums) or sorted(task.score(examples[0], []).keys())
    totals = torch.tensor([sums.get(k, 0.0) for k in keys] + [count], dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    n = int(totals[-1])
    metrics = {k: float(totals[i] / max(n, 1)) for i, k in enumerate(keys)}
    metrics["num_queries"] = n
    return metrics
