"""Expansion of a grid into runs: each run's train.py arguments, checked by train.py's own parser, its
DeepSpeed config and its parameter counts. Anything wrong fails here, naming the run, before a file is written."""

from __future__ import annotations

import contextlib
import io
import math
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError, UserError
from ds_parrots.sweep.grids import GRIDS, Grid, select

TRAIN_PY = Path(__file__).resolve().parent.parent / "train.py"


@dataclass
class PlannedRun:
    """One run of a sweep, checked and ready to write down, emit or train."""

    name: str
    """The run's name: its --train.run-name, its config and log file names, its SLURM job name."""
    subcommand: str
    """train.py subcommand (phonebook, shortest-path, pretrain)."""
    keys: dict
    """The grid coordinates (width, experts, book_size)."""
    args: list[str]
    """train.py's arguments: the subcommand, then its flags."""
    launcher: list[str]
    """What runs train.py, as the manifest and the console show it: `python` or `deepspeed --num_gpus N`."""
    run_dir: Path
    """Where train.py writes the run (results.json marks it done)."""
    params: dict
    """Total and active parameters of the model as train.py builds it."""
    ds_config: dict = field(repr=False)
    """The DeepSpeed config train.py builds from these flags at --gpus ranks."""

    @property
    def command(self) -> str:
        return shlex.join(self.launcher + self.args)

    def manifest_entry(self) -> dict:
        return {
            "name": self.name,
            "subcommand": self.subcommand,
            "keys": self.keys,
            "args": self.args,
            "command": self.command,
            "params": self.params,
            "run_dir": str(self.run_dir),
            "ds_config": f"configs/{self.name}.json",
        }


def _flag(arg: str) -> str:
    return arg.split("=", 1)[0]


def parse_train(args: list[str]):
    """train.py's own parser on `args`; its usage error (several lines from tyro) becomes one ConfigError."""
    from ds_parrots.cli.train import parse

    text = io.StringIO()
    try:
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            return parse(args)
    except SystemExit as e:
        if e.code == 0:
            raise ConfigError("train.py printed its help instead of parsing; drop --help") from None
        # tyro frames its message in a box: keep the text lines, drop the borders and rules.
        lines = [
            s
            for s in (line.strip(" │╭╮╰╯\t") for line in text.getvalue().splitlines())
            if s and set(s) - set("─- ")
        ]
        detail = lines[1] if len(lines) > 1 else "".join(lines)
        if "Perhaps you meant:" in lines:
            detail += f" (perhaps {lines[lines.index('Perhaps you meant:') + 1].split()[0]})"
        raise ConfigError(f"train.py rejects the flags: {detail}") from None


_task_cache: dict[tuple[str, str], object] = {}


def sized_model(subcommand: str, run):
    """The model as train.py will build it: synthetic tasks set the vocabulary and sequence length from their
    tokenizer (as ds_parrots.training.recipes.synthetic does), pre-training the sequence length from --data.seq-len."""
    if subcommand == "pretrain":
        from ds_parrots.training.recipes.pretrain import pretrain_model

        return pretrain_model(run.model, run.data, getattr(run, "max_seq_len_given", False))
    from ds_parrots.tasks import build_task
    from ds_parrots.training.recipes.synthetic import task_model

    key = (subcommand, repr(run.task))
    if key not in _task_cache:  # a 3e6-entry phone-book takes ~0.3 s to build; 15 runs share each book
        _task_cache[key] = build_task(subcommand, run.task)
    task = _task_cache[key]
    return task_model(run.model, task, getattr(run, "max_seq_len_given", False))


# Flags the sweep sets for every run, and what to do instead of giving them in --extra.
SWEEP_FLAGS = {
    "--train.out-dir": "use the sweep's --out-dir",
    "--moe.ep-size": "use the sweep's --ep-size",
    "--train.run-name": "each run is named after its grid point",
}


def plan(
    grid_name: str,
    filters: tuple[str, ...],
    extra: str,
    gpus: int,
    ep_size: Optional[int],
    out_dir: Optional[str],
    grid: Optional[Grid] = None,
) -> list[PlannedRun]:
    """Every run of the grid that the filters select, parsed by train.py, with its DeepSpeed config at `gpus`
    ranks and its parameter counts. `extra`: train flags for every run, as one shell-quoted string. `grid`: a grid
    that is not one of the named sweep grids (the reproduce command's), planned under the name `grid_name`."""
    if grid is None and grid_name not in GRIDS:
        raise ConfigError(f"unknown grid {grid_name!r}; choose one of {', '.join(GRIDS)}")
    if gpus < 1 or (ep_size is not None and ep_size < 1):
        raise ConfigError(f"--gpus={gpus} and --ep-size={ep_size} must be >= 1")
    grid = grid or GRIDS[grid_name]
    points = select(grid_name, grid.points(), filters)
    extra_args = shlex.split(extra)
    for flag in map(_flag, extra_args):
        if flag in SWEEP_FLAGS:
            raise ConfigError(f"--extra sets {flag}, which the sweep sets for each run; {SWEEP_FLAGS[flag]}")
        if any(flag == _flag(a) for a in points[0].args):
            raise ConfigError(
                f"--extra sets {flag}, which the grid sets for each run; pick runs with --filter"
            )
    out_dir = out_dir or f"runs/{grid_name}"
    # Shown relative to the current directory (ds_parrots/train.py from the repository root) when inside it.
    train_py = os.path.relpath(TRAIN_PY)
    train_py = str(TRAIN_PY) if train_py.startswith("..") else train_py
    launcher = ["python", train_py] if gpus == 1 else ["deepspeed", "--num_gpus", str(gpus), train_py]
    from ds_parrots.models.counting import count_params
    from ds_parrots.parallel.ds_config import build_ds_config, validate

    runs = []
    for p in points:
        experts = p.keys["experts"]
        ep = ep_size if ep_size is not None else math.gcd(experts, gpus)
        args = [
            p.subcommand,
            *p.args,
            *grid.defaults,
            "--train.out-dir",
            out_dir,
            "--train.run-name",
            p.name,
            *(["--moe.ep-size", str(ep)] if experts > 1 and ep > 1 else []),
            *extra_args,
        ]
        try:
            run = parse_train(args)
            model = sized_model(p.subcommand, run)
            validate(model, run.moe, run.train, gpus)
            ds_config = build_ds_config(model, run.moe, run.optim, run.train, gpus)
        except UserError as e:
            if extra_args:
                blame = f"check --extra {extra!r}"
            elif gpus > 1:  # e.g. a global batch that does not split over --gpus ranks
                blame = f"adjust the runs to --gpus {gpus} with --extra"
            else:
                blame = "the grid itself is wrong, please report it"
            raise ConfigError(f"{grid_name} run {p.name}: {e}; {blame}") from None
        counts = count_params(model)
        runs.append(
            PlannedRun(
                p.name,
                p.subcommand,
                p.keys,
                args,
                launcher,
                Path(run.train.out_dir) / run.train.run_name,
                {"total": counts.total, "active": counts.active},
                ds_config,
            )
        )
    return runs
