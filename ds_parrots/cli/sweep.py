"""`ds-parrots sweep <grid>`: the paper's grids as lists of training runs.

A grid expands into one `ds_parrots/train.py` command per point (grids.py). Every command is parsed by
train.py's own parser and its DeepSpeed config built during expansion (plan.py), so a bad --extra flag or an
invalid parallel layout fails, naming the run, before anything is written or launched. The runs are then
written down, emitted as SLURM jobs or trained here (outputs.py). Each run gets a readable name under one
directory per grid, so `tensorboard --logdir runs/<grid>` compares them side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro

from ds_parrots.cli.argv import parse_with_extras
from ds_parrots.errors import ConfigError


@dataclass
class SweepArgs:
    """Expand a grid of the paper into training runs. Prints each run's name, total / active parameters and
    command, and writes <out>/manifest.json and <out>/configs/<run>.json (the DeepSpeed config train.py builds
    at --gpus ranks). Without --run or --emit that is all it does (a dry run). Grids: synthetic-phonebook (105
    runs), synthetic-shortest-path (15), pretrain-natural (17), pretrain-math (17), smoke (4 tiny CPU runs that
    check the machinery)."""

    grid: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="GRID")]
    """Grid to expand: synthetic-phonebook, synthetic-shortest-path, pretrain-natural, pretrain-math or smoke."""
    dry_run: bool = False
    """Print the runs and write the manifest and configs only (also what happens without --run or --emit)."""
    run: bool = False
    """Also train the runs one after another on this node, each in its own process; a run whose directory holds
    results.json is skipped, one with a checkpoint but no results is resumed, a failed run is reported and the
    sweep goes on (exit code 1 at the end if any failed). Logs: <out>/logs/<run>.log."""
    emit: Optional[Literal["slurm"]] = None
    """Also write one SLURM job script per run, <out>/slurm/<run>.sbatch (one node, --gpus GPUs), and
    <out>/slurm/submit_all.sh that submits them; a job skips or resumes its run as --run does."""
    out: Optional[str] = None
    """Where the manifest, configs, logs and job scripts go. None: sweeps/<grid>."""
    out_dir: Optional[str] = None
    """Parent of the runs' directories (train.py's --train.out-dir); each run is <out-dir>/<run name>.
    None: runs/<grid>."""
    gpus: int = 1
    """Processes (GPUs) per run: 1 runs `python ds_parrots/train.py`, more `deepspeed --num_gpus N ...`."""
    ep_size: Optional[int] = None
    """Expert-parallel size of the MoE runs. None: the largest that divides both the experts and --gpus
    (min(experts, gpus) for powers of two)."""
    filter: tyro.conf.UseAppendAction[tuple[str, ...]] = ()
    """Keep only matching runs (repeatable; all must match): key=value on the grid's coordinates (width, experts,
    book_size; 'dense' is experts=1; value lists like width=256,512), or a substring of the run name."""
    extra: str = ""
    """Train flags appended to every run, as one quoted string, e.g. --extra "--train.steps 100
    --train.micro-batch 16" (repeatable). They may not set what the grid or the sweep sets per run."""
    sbatch: tyro.conf.UseAppendAction[tuple[str, ...]] = ()
    """With --emit slurm: extra #SBATCH options without their dashes, e.g. --sbatch partition=gpu --sbatch
    time=48:00:00 (repeatable)."""


def parse_args(argv: list[str]) -> SweepArgs:
    return parse_with_extras(SweepArgs, argv, "ds-parrots sweep")


def main(argv: list[str]) -> int:
    from ds_parrots.models.counting import human
    from ds_parrots.sweep.grids import GRIDS
    from ds_parrots.sweep.outputs import emit_slurm, execute, write_plan
    from ds_parrots.sweep.plan import plan

    args = parse_args(argv)
    if args.dry_run and (args.run or args.emit):
        raise ConfigError("--dry-run writes only the manifest and configs; drop it to --run or --emit")
    if args.run and args.emit:
        raise ConfigError("--run trains here and --emit slurm writes job scripts; choose one")
    runs = plan(args.grid, args.filter, args.extra, args.gpus, args.ep_size, args.out_dir)
    out = Path(args.out or f"sweeps/{args.grid}")
    grid = GRIDS[args.grid]
    print(f"{args.grid}: {len(runs)} runs ({grid.description}), {args.gpus} process(es) each")
    width = max(len(r.name) for r in runs)
    for r in runs:
        print(
            f"{r.name:<{width}}  total {human(r.params['total']):>7}  active {human(r.params['active']):>7}\n"
            f"    {r.command}"
        )
    write_plan(out, args.grid, args.gpus, runs)
    print(f"wrote {out / 'manifest.json'} and {len(runs)} DeepSpeed configs in {out / 'configs'}")
    if args.emit == "slurm":
        emit_slurm(out, args.grid, args.gpus, args.sbatch, runs)
    if args.run:
        return execute(out, args.gpus, runs)
    return 0
