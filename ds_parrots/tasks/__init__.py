"""The synthetic tasks, by CLI name: phonebook (memorization), shortest-path (reasoning), two-hop (theory)."""

from __future__ import annotations

from ds_parrots.tasks.base import Example, SyntheticTask
from ds_parrots.tasks.phonebook import PhonebookConfig, PhonebookTask
from ds_parrots.tasks.shortest_path import ShortestPathConfig, ShortestPathTask
from ds_parrots.tasks.two_hop import TwoHopConfig, TwoHopTask

TASKS: dict[str, tuple[type, type]] = {
    "phonebook": (PhonebookConfig, PhonebookTask),
    "shortest-path": (ShortestPathConfig, ShortestPathTask),
    "two-hop": (TwoHopConfig, TwoHopTask),
}


def build_task(name: str, cfg=None) -> SyntheticTask:
    """The task called `name` built from `cfg` (its config dataclass; None: the defaults)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    config_type, task_type = TASKS[name]
    if cfg is None:
        cfg = config_type()
    if not isinstance(cfg, config_type):
        raise ValueError(f"task {name!r} takes a {config_type.__name__}, not a {type(cfg).__name__}")
    return task_type(cfg)


__all__ = [
    "TASKS",
    "build_task",
    "Example",
    "SyntheticTask",
    "PhonebookConfig",
    "PhonebookTask",
    "ShortestPathConfig",
    "ShortestPathTask",
    "TwoHopConfig",
    "TwoHopTask",
]
