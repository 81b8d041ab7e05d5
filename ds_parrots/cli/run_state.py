"""Where a training command's run lives and how far it got, for launch scripts that restart runs by themselves
(launch/slurm.sbatch on a requeued or resubmitted job):

    python -m ds_parrots.cli.run_state <subcommand> [train flags...]

prints two lines: the state, then the run directory. The state is `done` (results.json is there), `resume` (a
checkpoint and no results: continue with --train.resume), or `new` (nothing to continue). Exit code 2 with one
line on a bad command line, as train.py would refuse it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional


def run_dir(argv: list[str]) -> Path:
    """The directory train.py would write for this command line (--train.out-dir / --train.run-name, else the
    name the recipe derives from the task and model)."""
    from ds_parrots.cli.train import SUBCOMMANDS, parse
    from ds_parrots.training.recipes.synthetic import default_run_name, model_tag

    run = parse(argv)
    name = next(n for n, cls in SUBCOMMANDS.items() if type(run) is cls)
    if run.train.run_name is not None:
        return run.train.run_dir(run.train.run_name)
    if name == "pretrain":
        from ds_parrots.data.mixture import load_mixture

        mixture = load_mixture(run.data.mixture, run.data.data_root) if run.data.mixture else None
        if mixture is None:
            from ds_parrots.errors import ConfigError

            raise ConfigError("pretrain needs --data.mixture (a mixture JSON file, or a shipped name)")
        return run.train.run_dir(f"pretrain-{mixture.name}-{model_tag(run.model, run.moe)}-s{run.train.seed}")
    return run.train.run_dir(default_run_name(name, run.task, run.model, run.moe, run.train.seed))


def state(path: Path) -> str:
    from ds_parrots.training.checkpoint import latest_tag

    if (path / "results.json").is_file():
        return "done"
    return "resume" if latest_tag(path) else "new"


def main(argv: Optional[list[str]] = None) -> int:
    from ds_parrots.cli.errors import run_command

    argv = list(sys.argv[1:] if argv is None else argv)
    # The launch scripts pass the train.py command line as it is, which may ask to resume already.
    argv = [a for a in argv if a != "--train.resume"]

    def show() -> int:
        path = run_dir(argv)
        print(state(path))
        print(path)
        return 0

    return run_command(show)


if __name__ == "__main__":
    sys.exit(main())
