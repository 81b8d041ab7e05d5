"""Training runs of a reproduction, planned and run by the sweep's machinery.

Planning goes through `ds_parrots.sweep.plan.plan`: train.py's own parser checks every run's flags, and each
run gets its DeepSpeed config and parameter counts, before anything trains. Running goes through
`ds_parrots.sweep.outputs.execute`, one run at a time: a subprocess of train.py (or of the deepspeed launcher),
its log under <root>/logs/, a run whose directory holds results.json skipped, an interrupted one resumed. A run
that crashes is reported and returns no result; the caller goes on.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError
from ds_parrots.sweep.grids import Grid, Point
from ds_parrots.sweep.outputs import execute
from ds_parrots.sweep.plan import PlannedRun, plan
from ds_parrots.training.checkpoint import RESUMABLE_CHANGES

# A finished run is reused only if it is the run planned now: what may differ is where it lives and how it logged
# (the changes a resume allows), but not its length or how much of the eval set it scored.
REUSABLE_CHANGES = RESUMABLE_CHANGES - {"train.steps", "train.max_eval"}


def plan_runs(
    name: str,
    description: str,
    points: list[Point],
    defaults: tuple[str, ...],
    gpus: int,
    ep_size: Optional[int],
    extra: str,
    out_dir: Path,
) -> dict[str, PlannedRun]:
    """Every point checked and planned as the sweep plans its runs; by run name. `defaults`: train flags of every
    run (--extra may override them, not the points' own flags)."""
    grid = Grid(description, lambda: list(points), defaults)
    return {r.name: r for r in plan(name, (), extra, gpus, ep_size, str(out_dir), grid=grid)}


def emit_jobs(
    root: Path, grid: str, description: str, gpus: int, sbatch: tuple[str, ...], runs: dict, command: str
) -> None:
    """The manifest, the DeepSpeed configs and one SLURM job per run under `root`, as the sweep writes them;
    `command`: what wrote them, for the jobs' header."""
    from ds_parrots.sweep.outputs import emit_slurm, write_plan

    write_plan(root, grid, gpus, list(runs.values()), description=description)
    emit_slurm(root, grid, gpus, sbatch, list(runs.values()), command=command)


def check_finished_runs(runs: dict[str, PlannedRun]) -> None:
    """Refuse, before training anything, to reuse a finished run (results.json) whose recorded config.json is not
    the run planned now: e.g. a rerun after --epochs or a scale's steps changed would otherwise skip the probe and
    report the old run's accuracy as this configuration's."""
    from ds_parrots.sweep.plan import parse_train, sized_model
    from ds_parrots.training.checkpoint import flatten_config
    from ds_parrots.training.setup import run_config_dict

    stale = []
    for r in runs.values():
        saved_path = r.run_dir / "config.json"
        if not (r.run_dir / "results.json").is_file() or not saved_path.is_file():
            continue
        run = parse_train(r.args)
        planned = run_config_dict(run, sized_model(r.subcommand, run), task_name=r.subcommand)
        new = flatten_config(
            json.loads(json.dumps(planned, default=str))
        )  # as train.py writes it: Paths as strings
        saved = flatten_config(json.loads(saved_path.read_text()))
        diff = sorted(
            k for k in saved.keys() | new.keys() if k not in REUSABLE_CHANGES and saved.get(k) != new.get(k)
        )
        if diff:
            stale.append(
                (r.run_dir, ", ".join(f"{k}: {saved.get(k)!r} there, {new.get(k)!r} now" for k in diff[:3]))
            )
    if stale:
        run_dir, shown = stale[0]
        more = f" (and {len(stale) - 1} more finished runs)" if len(stale) > 1 else ""
        raise ConfigError(
            f"{run_dir} holds a finished run of other settings ({shown}){more}; remove those run "
            f"directories or choose another --out-dir, so that no old result is reported as new"
        )


@contextlib.contextmanager
def omp_threads(gpus: int) -> Iterator[str]:
    """OMP_NUM_THREADS for the training processes: the user's value, else the cores shared among the ranks (the
    sweep sets it for several ranks only; one CPU process also needs it said, or torch may oversubscribe)."""
    before = os.environ.get("OMP_NUM_THREADS")
    threads = before or str(max(1, (os.cpu_count() or 1) // gpus))
    os.environ["OMP_NUM_THREADS"] = threads
    try:
        yield threads
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]


@dataclass
class Probe:
    """One run's outcome, as the summary records it."""

    run: str
    """The run's name (its directory under the experiment's folder)."""
    status: str
    """trained, done before (its results.json existed: skipped), or failed (the process crashed)."""
    seconds: Optional[float]
    """Wall time of the run, process start to exit (None: skipped and no earlier summary knew it)."""
    results: Optional[dict]
    """Its results.json (None when it failed)."""
    log: str
    """Its training log."""


def run_probe(run: PlannedRun, root: Path, gpus: int, known_seconds: Optional[float] = None) -> Probe:
    """Train `run` here unless it is done; `known_seconds`: its wall time recorded by an earlier invocation."""
    results_path = run.run_dir / "results.json"
    log = root / "logs" / f"{run.name}.log"
    if results_path.is_file():
        return Probe(run.name, "done before", known_seconds, json.loads(results_path.read_text()), str(log))
    report = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(report):  # its per-run lines would repeat ours; kept for a failure
        rc = execute(root, gpus, [run])
    seconds = round(time.monotonic() - start, 1)
    if rc != 0:
        # The sweep's report without its first line (training, log ...) and last (the sweep's tally): the exit
        # code and the end of the log.
        print("\n".join(report.getvalue().splitlines()[1:-1]), flush=True)
        return Probe(run.name, "failed", seconds, None, str(log))
    return Probe(run.name, "trained", seconds, json.loads(results_path.read_text()), str(log))
