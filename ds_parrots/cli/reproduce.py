"""`ds-parrots reproduce`: a whole experiment of the paper, grid to figure. `reproduce pretrain` has its own flags
(cli/reproduce_pretrain.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro

from ds_parrots.cli.argv import parse_with_extras
from ds_parrots.config.checks import number
from ds_parrots.errors import ConfigError
from ds_parrots.reproduce.experiments import _header, _phonebook, _points, _shortest_path
from ds_parrots.reproduce.scales import EXPERIMENTS


@dataclass
class ReproduceArgs:
    """Reproduce one of the paper's synthetic experiments, grid to figure.

    phonebook: for each model of the grid (dense and MoE, several widths and expert counts, top-2), the largest
    phone-book it answers exactly on >= 90% of queries, by bisection over a ladder of book sizes
    (ceil(log2(rungs + 1)) probes per model; the paper's ladder 1e5 .. 3e6 at --scale paper), each probe a full
    training run from scratch. shortest-path: one run per model, accuracy against width per expert count.

    Training length is a number of epochs: steps = ceil(epochs x training examples / global batch), so every book
    gets the same exposures per entry and a larger book fails for lack of parameters, not of training. The
    epochs, batch and models of each scale are printed with --dry-run and recorded in summary.json.

    Writes <out-dir>/<experiment>-<scale>/: one directory per run (named from its config; a rerun skips runs that
    hold results.json and resumes interrupted ones), logs/, summary.json, table.md and the figure
    (phonebook_capacity.png or shortest_path.png, drawn as `ds-parrots-eval plot summary.json` draws it). A run
    that crashes is reported with its log and the rest goes on (its model gets no capacity); the exit code is then 1.

    On GPUs: --num-gpus N trains each run with `deepspeed --num_gpus N`, one run after another. Bisection needs a
    probe's result before it picks the next book, so the probes of a phone-book reproduction cannot be submitted
    ahead as batch jobs: --emit slurm instead writes one job for EVERY (model, book) of the grid (all rungs: more
    runs than bisection needs, but all in parallel); when they have finished, rerun without --emit to collect
    the summary and figure from their results (nothing is retrained).

    The pre-training experiment has its own flags: `ds-parrots reproduce pretrain --help`."""

    experiment: Annotated[Literal["phonebook", "shortest-path"], tyro.conf.Positional]
    """phonebook (memorization capacity vs parameters) or shortest-path (reasoning accuracy vs width); pretrain
    (knowledge and math after pre-training on a mixture) takes the flags of `reproduce pretrain --help`."""
    scale: Literal["smoke", "tiny", "paper"]
    """smoke: seconds on a CPU, checks the machinery (no claim); tiny: a miniature of the experiment on one CPU
    (phonebook ~22 minutes on 2 cores; shortest-path ~19, not yet trained long enough to show the trend);
    paper: the paper's models
    (synthetic-d{256,512,1024}-{dense,e8,e16,e32,e64}) and books, for GPUs."""
    out_dir: str = "runs/reproduce"
    """Parent folder; the experiment writes to <out-dir>/<experiment>-<scale>/."""
    dry_run: bool = False
    """Print the grid (models with total / active parameters), the ladder with each rung's steps, and every
    training command; train nothing and write nothing."""
    num_gpus: int = 1
    """Processes per training run: 1 runs `python ds_parrots/train.py`, more `deepspeed --num_gpus N`."""
    ep_size: Optional[int] = None
    """Expert-parallel size of the MoE runs. None: the largest that divides both the experts and --num-gpus."""
    emit: Optional[Literal["slurm"]] = None
    """Write SLURM job scripts (one node, --num-gpus GPUs each) for every run of the grid instead of training here
    (phonebook: every rung of the ladder for every model, see above); submit <folder>/slurm/submit_all.sh."""
    sbatch: tyro.conf.UseAppendAction[tuple[str, ...]] = ()
    """With --emit slurm: extra #SBATCH options without their dashes, e.g. --sbatch partition=gpu (repeatable)."""
    seed: int = 0
    """Seed of model initialization, data order and the task (the book's names and numbers, the graphs)."""
    epochs: Optional[float] = None
    """Passes over the training set per run. None: the scale's choice (--dry-run shows it)."""
    extra: str = ""
    """Train flags added to every run, as one quoted string, e.g. --extra "--train.micro-batch 16" to fit GPU
    memory. They may not set what the reproduction sets per run (model, book, steps, global batch, seeds)."""


def parse_args(argv: list[str]) -> ReproduceArgs:
    return parse_with_extras(ReproduceArgs, argv, "ds-parrots reproduce")


def main(argv: list[str]) -> int:
    if argv[:1] == ["pretrain"]:
        from ds_parrots.cli.reproduce_pretrain import main as pretrain_main

        return pretrain_main(argv[1:])
    from ds_parrots.reproduce.probes import check_finished_runs, emit_jobs, omp_threads, plan_runs

    args = parse_args(argv)
    exp = EXPERIMENTS[(args.experiment, args.scale)]
    epochs = exp.epochs if args.epochs is None else args.epochs
    number("--epochs", epochs, 0, low_open=True)
    if args.dry_run and args.emit:
        raise ConfigError("--dry-run prints the runs and --emit slurm writes job scripts; choose one")
    root = Path(args.out_dir) / f"{args.experiment}-{args.scale}"
    grid = f"reproduce-{args.experiment}-{args.scale}"
    points = _points(args, exp, epochs)
    defaults = exp.train_args + (
        ("--train.cache-dir", str(root / "cache")) if args.experiment == "shortest-path" else ()
    )
    runs = plan_runs(grid, exp.description, points, defaults, args.num_gpus, args.ep_size, args.extra, root)
    if args.dry_run:
        print(_header(args, exp, epochs, runs, None))
        print("commands (phonebook: bisection runs some of each model's rungs):")
        print("\n".join(f"  {r.command}" for r in runs.values()))
        return 0
    if args.emit == "slurm":
        print(_header(args, exp, epochs, runs, None))
        command = f"ds-parrots reproduce {args.experiment} --scale {args.scale} --emit slurm"
        emit_jobs(root, grid, exp.description, args.num_gpus, args.sbatch, runs, command)
        print(
            f"when the jobs are done: ds-parrots reproduce {args.experiment} --scale {args.scale} "
            f"--out-dir {args.out_dir} (collects the summary and figure; trains nothing that finished)"
        )
        return 0
    check_finished_runs(runs)
    with omp_threads(args.num_gpus) as threads:
        print(_header(args, exp, epochs, runs, threads), flush=True)
        run = _phonebook if args.experiment == "phonebook" else _shortest_path
        return run(args, exp, epochs, root, runs)
