"""`ds-parrots`: the console entry point.

    ds-parrots train <phonebook|shortest-path|two-hop|pretrain> [flags]
                                                               one-process training (same flags as train.py)
    ds-parrots presets [--vocab-size N]                         the named model presets and their sizes
    ds-parrots tokenizer train --input F [F ...] --output tok [--vocab-size 32000] [flags]
                                                               train a sentencepiece tokenizer (tok.model)
    ds-parrots prepare --input F [F ...] --tokenizer tok.model --output data/name [--num-proc N] [flags]
                                                               tokenize text into data/name.bin / .idx
    ds-parrots data synth-corpus --out DIR [--seed S] [--people N] [--math-train N] [flags]
                                                               a small synthetic corpus (biographies, word
                                                               problems) with its TriviaQA / GSM8k eval sets

    ds-parrots topology [--hostfile H | --slurm | --gpus-per-node G] -- <train args>
                                                               the world / expert / data-parallel sizes a launch gets
    ds-parrots sweep <grid> [--run | --emit slurm] [flags]      expand one of the paper's grids into runs
    ds-parrots reproduce <phonebook|shortest-path|pretrain> --scale <smoke|tiny|paper> [flags]
                                                               a whole experiment of the paper, grid to figure

    ds-parrots consolidate <run_dir|checkpoint> --out model.safetensors
                                                               any checkpoint -> one fp32 state dict + JSON sidecar
    ds-parrots export-hf <run_dir|checkpoint|model.safetensors> --out dir/
                                                               a Hugging Face Mistral / Mixtral folder

`<command> --help` lists a command's flags.
"""

from __future__ import annotations

import sys
from typing import Optional

from ds_parrots.cli.data import DATA_COMMANDS
from ds_parrots.cli.errors import run_command
from ds_parrots.config import PRESETS, ModelConfig, preset_model


def presets_table(vocab_size: Optional[int] = None) -> str:
    from ds_parrots.models.counting import count_params, human

    rows = [
        f"{'preset':<24} {'L':>3} {'d':>5} {'heads':>7} {'experts':>8} {'vocab':>6} {'total':>8} {'active':>8}"
    ]
    for name in PRESETS:
        # Paper presets fix their 32k vocabulary; the others take --vocab-size (default 32k).
        cfg = preset_model(name, ModelConfig(vocab_size=vocab_size or 32000))
        c = count_params(cfg)
        rows.append(
            f"{name:<24} {cfg.n_layers:>3} {cfg.d_model:>5} {cfg.n_heads:>3}/{cfg.kv_heads:<3} "
            f"{cfg.num_experts:>8} {cfg.vocab_size:>6} {human(c.total):>8} {human(c.active):>8}"
        )
    return "\n".join(rows)


USAGE = __doc__


# Commands that live in their own module, each with `main(argv) -> int` (parsing its own flags).
MODULE_COMMANDS = {
    "topology": "ds_parrots.cli.topology",
    "sweep": "ds_parrots.cli.sweep",
    "consolidate": "ds_parrots.cli.consolidate",
    "export-hf": "ds_parrots.cli.export_hf",
    "reproduce": "ds_parrots.cli.reproduce",
}


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.strip())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "train":
        from ds_parrots.cli.train import main as train_main

        return train_main(rest)
    if cmd == "presets":
        vocab = None
        if rest[:1] == ["--vocab-size"] and len(rest) == 2 and rest[1].isdigit():
            vocab = int(rest[1])
        elif rest:
            print(
                f"error: ds-parrots presets: unexpected {' '.join(rest)!r}; it takes only --vocab-size N, a "
                "whole number (sizes are at the 32k vocabulary unless given)",
                file=sys.stderr,
            )
            return 2
        print(presets_table(vocab))
        print("\nSynthetic tasks set the vocabulary from their tokenizer; sizes above use the vocab shown.")
        return 0
    if cmd in MODULE_COMMANDS:
        import importlib

        return run_command(lambda: importlib.import_module(MODULE_COMMANDS[cmd]).main(rest))
    if cmd in DATA_COMMANDS:
        return run_command(lambda: DATA_COMMANDS[cmd](rest))
    commands = ["train", "presets", *DATA_COMMANDS, *MODULE_COMMANDS]
    print(
        f"error: unknown command {cmd!r}; commands: {', '.join(commands)} (ds-parrots --help describes them)",
        file=sys.stderr,
    )
    return 2


def console() -> None:
    """The `ds-parrots` console script (see ds_parrots.parallel.process_group.exit_process for why not sys.exit)."""
    from ds_parrots.parallel.process_group import exit_process

    exit_process(main())


if __name__ == "__main__":
    console()
