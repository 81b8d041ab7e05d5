"""Train a model: `deepspeed --num_gpus N ds_parrots/train.py <task> [flags]`, or
`python ds_parrots/train.py <task> [flags]` for one process. `<task> --help` lists every flag.

Subcommands: phonebook (memorization), shortest-path (reasoning), two-hop (the paper's theory task),
pretrain (language modelling on a mixture of token files).
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from dataclasses import dataclass, field
from typing import Annotated, Optional, Union

from ds_parrots.cli.argv import strip_local_rank
from ds_parrots.cli.errors import run_command
from ds_parrots.config import DataConfig, ModelConfig, RunConfig, TrainConfig, preset_model
from ds_parrots.tasks.phonebook import PhonebookConfig
from ds_parrots.tasks.shortest_path import ShortestPathConfig
from ds_parrots.tasks.two_hop import TwoHopConfig


@dataclass
class PhonebookRun(RunConfig):
    """Memorize a random phone-book (closed book) and report exact-match retrieval."""

    task: PhonebookConfig = field(default_factory=PhonebookConfig)
    """The phone-book: its size, name pools, queries and pass threshold."""


@dataclass
class ShortestPathRun(RunConfig):
    """Learn to output a shortest path in random G(n, p) graphs."""

    task: ShortestPathConfig = field(default_factory=ShortestPathConfig)
    """The graphs: nodes, edge probability, train/test sizes."""


@dataclass
class TwoHopRun(RunConfig):
    """Decide whether two vertices are joined by a path of length exactly 2."""

    task: TwoHopConfig = field(default_factory=TwoHopConfig)
    """The graphs: nodes, edge probability, train/test sizes."""


@dataclass
class PretrainRun(RunConfig):
    """Pre-train on a mixture of tokenized corpora with the paper's schedule (60k steps x 512 x 2048 tokens,
    AdamW lr 1e-3, wd 0.1, 20% warmup then linear decay), reporting validation perplexity."""

    data: DataConfig = field(default_factory=DataConfig)
    """The mixture, sequence length and held-out validation set."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=60_000, global_batch=512, micro_batch=8, eval_every=1000, eval_batch=8, save_every=1000
        )
    )
    """Batching, precision, ZeRO, checkpoints and logging (paper defaults: 60,000 steps of 512 sequences)."""


SUBCOMMANDS = {
    "phonebook": PhonebookRun,
    "shortest-path": ShortestPathRun,
    "two-hop": TwoHopRun,
    "pretrain": PretrainRun,
}


def _preset_from_argv(argv: list[str]) -> Optional[str]:
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--preset="):
            return a.split("=", 1)[1]
    return None


def parse(argv: list[str]):
    """The run config of the subcommand in argv; a --preset becomes the default the other flags override."""
    import tyro

    preset = _preset_from_argv(argv)
    model = preset_model(preset) if preset else ModelConfig()
    choices = []
    for name, cls in SUBCOMMANDS.items():
        default = cls(model=dataclasses.replace(model), preset=preset)
        choices.append(Annotated[cls, tyro.conf.subcommand(name, default=default, description=cls.__doc__)])
    run = tyro.cli(Union[tuple(choices)], args=argv, description=__doc__)
    # Not a config field (config.json keeps its shape): whether --model.max-seq-len was given, so that the
    # recipe keeps it instead of sizing the model to the data (config.model.fit_sequence_length).
    run.max_seq_len_given = any(
        a.split("=", 1)[0] in ("--model.max-seq-len", "--model.max_seq_len") for a in argv
    )
    return run


def main(argv: Optional[list[str]] = None) -> int:
    argv = strip_local_rank(list(sys.argv[1:] if argv is None else argv))
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed")
    outcome = {"ok": False}

    def train() -> int:
        run = parse(argv)
        name = next(n for n, cls in SUBCOMMANDS.items() if type(run) is cls)
        if name == "pretrain":
            from ds_parrots.training.recipes.pretrain import pretrain

            results = pretrain(run, run.data)
        else:
            from ds_parrots.training.recipes.synthetic import train_synthetic

            results = train_synthetic(name, run.task, run)
        outcome["ok"] = True
        return 0 if results else 1

    try:
        return run_command(train)
    finally:
        from ds_parrots.parallel.process_group import shutdown

        shutdown(barrier=outcome["ok"])


def run_script() -> None:
    """ds_parrots/train.py, as the launchers start it (see ds_parrots.parallel.process_group.exit_process for why
    not sys.exit)."""
    from ds_parrots.parallel.process_group import exit_process

    exit_process(main())
