"""Score a checkpoint on the synthetic task it was trained on, exactly as training's evaluation does
(same queries, same greedy decoding, same scorer), on any number of ranks."""

from __future__ import annotations

from typing import Optional

from ds_parrots.errors import ConfigError
from ds_parrots.tasks import TASKS, build_task

SYNTHETIC_TASKS = tuple(TASKS)


def checkpoint_task(meta: dict, source) -> object:
    """The task the checkpoint trained on, rebuilt from its saved config."""
    name = meta.get("task_name")
    if name not in TASKS:
        raise ConfigError(
            f"{source} was trained on {name!r}, not a synthetic task; evaluate it on benchmarks "
            f"(--tasks world_knowledge,commonsense,math --bench-dir DIR)"
        )
    config_type = TASKS[name][0]
    try:
        cfg = config_type(**(meta.get("task_config") or {}))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: the saved {name} task config cannot be rebuilt ({e})") from None
    return build_task(name, cfg)


def evaluate_synthetic(
    model,
    meta: dict,
    name: str,
    source,
    device,
    batch_size: int,
    limit: Optional[int],
    rank: int = 0,
    world_size: int = 1,
) -> dict:
    """Metrics of `name` (the checkpoint's own task) as training reports them, plus its one-line summary."""
    from ds_parrots.tasks.evaluate import evaluate_task

    if name != meta.get("task_name"):
        raise ConfigError(
            f"{source} was trained on {meta.get('task_name')!r}; a synthetic task is scored on "
            f"the data it was trained on, so --tasks {name} does not apply to it"
        )
    task = checkpoint_task(meta, source)
    if task.tokenizer.vocab_size != model.cfg.vocab_size:
        raise ConfigError(
            f"{source}: the {name} task's tokenizer has {task.tokenizer.vocab_size} symbols but "
            f"the model {model.cfg.vocab_size}; the saved task config does not match the weights"
        )
    metrics = evaluate_task(model, task, device, batch_size, limit, rank, world_size)
    return {"category": "synthetic", "metrics": metrics, "summary": task.summary(metrics)}
