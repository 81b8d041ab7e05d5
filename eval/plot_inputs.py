"""What the figures are drawn from: the result files of training, evaluation and reproduce, read into models and
their scores or capacities.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from ds_parrots.errors import ConfigError


@dataclass(frozen=True)
class Model:
    """What places a model on the figures: its width, experts and parameter counts."""

    d_model: int
    num_experts: int
    total: int
    active: int

    @property
    def is_moe(self) -> bool:
        # As ds_parrots.config.ModelConfig.is_moe; benchmark files may also write 0 experts for a dense model.
        return self.num_experts > 1

    @property
    def label(self) -> str:
        return f"d{self.d_model}-" + (f"e{self.num_experts}" if self.is_moe else "dense")


@dataclass(frozen=True)
class Capacity:
    """A model's phone-book capacity: the largest book answered at the pass threshold."""

    model: Model
    capacity: Optional[int]
    """Largest book passed; None when even the smallest book tried failed."""
    bound: Literal["exact", "at_least", "below"]
    """exact: the next larger book tried failed; at_least: the largest book tried passed; below: none passed."""
    smallest: int
    """Smallest book tried (the upper bound drawn when bound is 'below')."""
    threshold: float
    """Exact-match accuracy a book had to reach (the paper: 0.9)."""


@dataclass
class Inputs:
    """Everything the figures need, gathered from the files."""

    benchmarks: list[tuple[Model, dict[str, float]]]
    capacities: list[Capacity]
    paths: list[tuple[Model, float]]
    """(model, shortest-path accuracy: share of valid shortest paths)."""
    pretrain: list[tuple[Model, dict[str, float]]] = field(default_factory=list)
    """(model, its scores) from `ds-parrots reproduce pretrain` summaries: knowledge, math_train, math_test,
    math_gap (those that were scored)."""
    pretrain_labels: dict[str, str] = field(default_factory=dict)
    """What each pre-training score measures, as the summary names it (axis labels)."""


def _field(data, dotted: str, path: Path, what: str):
    """data['a']['b'] for 'a.b'; a missing one is a one-line error naming the file and the field."""
    value = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ConfigError(f"{path}: missing field '{dotted}' ({what} needs it)")
        value = value[part]
    return value


def _model(entry: dict, path: Path, what: str, prefix: str = "") -> Model:
    """The model of a benchmark file, a run's results.json or a summary entry: they share these fields."""
    return Model(
        d_model=int(_field(entry, "model.d_model", path, what)),
        num_experts=max(1, int(_field(entry, "model.num_experts", path, what))),
        total=int(_field(entry, "params.total", path, what)),
        active=int(_field(entry, "params.active", path, what)),
    )


def _entries(data: dict, key: str, path: Path, what: str) -> list[tuple[dict, Path]]:
    entries = _field(data, key, path, what)
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: field '{key}' is not a list ({what} needs one entry per model)")
    return [(e, path) for e in entries]


def read_inputs(files: list[Path]) -> Inputs:
    """Sort every file into the figure it feeds; a file that feeds none is an error naming it."""
    inputs = Inputs([], [], [])
    phonebook_runs: dict[tuple[Model, float], list[tuple[int, bool]]] = {}
    for path in map(Path, files):
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a result file holds a JSON object, this one a {type(data).__name__}")
        kind, task = data.get("kind"), data.get("task")
        if kind == "benchmarks":
            what = "the benchmark figure"
            categories = _field(data, "categories", path, what)
            if not isinstance(categories, dict) or not categories:
                raise ConfigError(
                    f"{path}: field 'categories' holds no category averages ({what} needs them)"
                )
            inputs.benchmarks.append((_model(data, path, what), {k: float(v) for k, v in categories.items()}))
        elif kind == "phonebook_capacity":
            what = "the capacity figure"
            smallest = min(int(b) for b in _field(data, "ladder", path, what))
            threshold = float(_field(data, "pass_threshold", path, what))
            for i, (entry, _) in enumerate(_entries(data, "models", path, what)):
                bound = _field(entry, "bound", path, what)
                if bound == "error":  # a crashed probe: the summary's table says which; nothing to draw
                    print(
                        f"{path}: {entry.get('name', f'model {i}')} has no capacity (a probe failed); "
                        "left out of the figure"
                    )
                    continue
                capacity = _field(entry, "capacity", path, what)
                inputs.capacities.append(
                    Capacity(
                        _model(entry, path, what),
                        None if capacity is None else int(capacity),
                        bound,
                        smallest,
                        threshold,
                    )
                )
        elif kind == "shortest_path_accuracy":
            what = "the shortest-path figure"
            for entry, _ in _entries(data, "runs", path, what):
                accuracy = _field(entry, "accuracy", path, what)
                if accuracy is not None:  # a failed run: the summary's table says so
                    inputs.paths.append((_model(entry, path, what), float(accuracy)))
        elif kind == "pretrain_accuracy":
            what = "the pre-training figures"
            inputs.pretrain_labels.update(_field(data, "score_labels", path, what))
            for entry, _ in _entries(data, "models", path, what):
                scores = _field(entry, "scores", path, what)
                inputs.pretrain.append(
                    (_model(entry, path, what), {k: float(v) for k, v in scores.items() if v is not None})
                )
        elif task == "phonebook":
            what = "the capacity figure"
            book = int(_field(data, "task_config.book_size", path, what))
            threshold = float(_field(data, "task_config.pass_threshold", path, what))
            phonebook_runs.setdefault((_model(data, path, what), threshold), []).append(
                (book, phonebook_passed(data, path))
            )
        elif task == "shortest-path":
            what = "the shortest-path figure"
            inputs.paths.append(
                (_model(data, path, what), float(_field(data, "metrics.valid_shortest", path, what)))
            )
        else:
            raise ConfigError(
                f"{path}: missing field 'kind' (benchmarks, phonebook_capacity, shortest_path_accuracy or "
                "pretrain_accuracy) or 'task' (phonebook or shortest-path); plot cannot use it"
            )
    for (model, threshold), runs in phonebook_runs.items():
        inputs.capacities.append(capacity_from_runs(model, runs, threshold))
    return inputs


def phonebook_passed(results: dict, path: Path = Path("results.json")) -> bool:
    """Whether a phone-book run's results.json meets its pass threshold, by the rule training reported."""
    from ds_parrots.tasks.phonebook import passes

    what = "the pass / fail verdict"
    return passes(
        float(_field(results, "metrics.exact_match", path, what)),
        float(_field(results, "task_config.pass_threshold", path, what)),
    )


def capacity_from_runs(model: Model, runs: list[tuple[int, bool]], threshold: float) -> Capacity:
    """A model's capacity from its runs, (book size, passed) each: the largest book that passed."""
    passed = [book for book, ok in runs if ok]
    largest = max(book for book, _ in runs)
    smallest = min(book for book, _ in runs)
    if not passed:
        return Capacity(model, None, "below", smallest, threshold)
    best = max(passed)
    return Capacity(model, best, "at_least" if best == largest else "exact", smallest, threshold)
