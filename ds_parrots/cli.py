"""`ds-parrots`: the console entry point.

    ds-parrots train <phonebook|shortest-path|two-hop|pretrain> [flags]
                                                               one-process training (same flags as train.py)
    ds-parrots presets [--vocab-size N]                         the named model presets and their sizes
    ds-parrots tokenizer train --input F [F ...] --output tok [--vocab-size 32000] [flags]
                                                               train a sentencepiece tokenizer (tok.model)
    ds-parrots prepare --input F [F ...] --tokenizer tok.model --output data/name [--num-proc N] [flags]
                                                               tokenize text into data/name.bin / .idx

    ds-parrots topology [--hostfile H | --slurm | --gpus-per-node G] -- <train args>
                                                               the world / expert / data-parallel sizes a launch gets
    ds-parrots sweep <grid> [--run | --emit slurm] [flags]      expand one of the paper's grids into runs
    ds-parrots reproduce <phonebook|shortest-path> --scale <smoke|tiny|paper> [flags]
                                                               a whole experiment of the paper, grid to figure

    ds-parrots consolidate <run_dir|checkpoint> --out model.safetensors
                                                               any checkpoint -> one fp32 state dict + JSON sidecar
    ds-parrots export-hf <run_dir|checkpoint|model.safetensors> --out dir/
                                                               a Hugging Face Mistral / Mixtral folder

`<command> --help` lists a command's flags.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ds_parrots.config import PRESETS, ConfigError, ModelConfig, preset_model


def presets_table(vocab_size: Optional[int] = None) -> str:
    from ds_parrots.model.counting import count_params, human  # imports torch: only the command that needs it

    rows = [f"{'preset':<24} {'L':>3} {'d':>5} {'heads':>7} {'experts':>8} {'vocab':>6} {'total':>8} {'active':>8}"]
    for name in PRESETS:
        # Paper presets fix their 32k vocabulary; the others take --vocab-size (default 32k).
        cfg = preset_model(name, ModelConfig(vocab_size=vocab_size or 32000))
        c = count_params(cfg)
        rows.append(f"{name:<24} {cfg.n_layers:>3} {cfg.d_model:>5} {cfg.n_heads:>3}/{cfg.kv_heads:<3} "
                    f"{cfg.num_experts:>8} {cfg.vocab_size:>6} {human(c.total):>8} {human(c.active):>8}")
    return "\n".join(rows)


USAGE = __doc__


@dataclass
class TokenizerTrainArgs:
    """Train a sentencepiece tokenizer, Llama-style: <unk>=0 <s>=1 </s>=2, no pad piece, byte fallback,
    identity normalization (decode(encode(text)) == text)."""

    input: list[Path]
    """Text files: .txt (one sentence per line), or .jsonl / .json / .parquet (optionally .gz) read through
    --text-field."""
    output: Path
    """Output prefix: writes <output>.model and <output>.vocab (a trailing .model is dropped)."""
    vocab_size: int = 32000
    """Pieces in the vocabulary, the 3 specials and (with byte fallback) 256 byte pieces included."""
    model_type: Literal["bpe", "unigram", "char", "word"] = "bpe"
    """Sentencepiece algorithm (Llama and Mistral use bpe)."""
    text_field: str = "text"
    """Field holding the text in .jsonl / .json / .parquet inputs."""
    num_threads: Optional[int] = None
    """Training threads. None: every CPU."""
    input_sentence_size: int = 10_000_000
    """Lines sampled from the inputs for training; 0 uses them all (memory grows with it)."""
    character_coverage: float = 0.9995
    """Share of the characters in the text that get their own piece; rarer ones fall back to bytes."""
    byte_fallback: bool = True
    """Encode characters outside the vocabulary as UTF-8 byte pieces instead of <unk>."""


@dataclass
class PrepareArgs:
    """Tokenize text into one Megatron-format token file pair, <output>.bin and <output>.idx, for pre-training.
    Each document is its ids followed by </s>, in input order whatever --num-proc."""

    input: list[str]
    """.jsonl / .parquet (text in --text-field), .txt (a document per line), .json, or any of these .gz; or one
    Hugging Face Hub dataset name (needs internet)."""
    tokenizer: Path
    """A sentencepiece .model file (from 'ds-parrots tokenizer train', or a Llama / Mistral tokenizer.model)."""
    output: Path
    """Output prefix: writes <output>.bin and <output>.idx."""
    text_field: str = "text"
    """Field holding the text of each document (not used for .txt)."""
    num_proc: Optional[int] = None
    """Worker processes. None: every CPU."""
    skip_empty: bool = False
    """Skip empty, whitespace-only or null texts (and report how many) instead of stopping at the first."""
    overwrite: bool = False
    """Replace an existing <output>.bin / .idx (the old pair stays until the new one is complete)."""
    cache_dir: Optional[Path] = None
    """Where Hugging Face datasets keeps its Arrow copy of .json / compressed inputs. None: a temporary folder
    beside the output, removed at the end (Hub datasets: the datasets cache)."""


def parse_args(cls, argv: list[str], prog: str):
    """The dataclass `cls` from argv; tyro prints --help (field docstrings) and usage errors itself."""
    import inspect

    import tyro

    return tyro.cli(cls, args=argv, prog=prog, description=inspect.cleandoc(cls.__doc__))


def tokenizer_command(argv: list[str]) -> int:
    if argv[:1] != ["train"]:
        print("usage: ds-parrots tokenizer train --input F [F ...] --output PREFIX [flags]  ('train --help' lists "
              "the flags)", file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    import time

    from ds_parrots.data.tokenizer import SentencePieceTokenizer, train_sentencepiece

    args = parse_args(TokenizerTrainArgs, argv[1:], "ds-parrots tokenizer train")
    start = time.perf_counter()
    model = train_sentencepiece(args.input, args.output, args.vocab_size, args.model_type, args.text_field,
                                args.num_threads, args.input_sentence_size, args.character_coverage,
                                args.byte_fallback)
    tok = SentencePieceTokenizer(model)
    print(f"trained {tok.vocab_size}-piece {args.model_type} tokenizer in {time.perf_counter() - start:.1f} s: "
          f"{model} (unk={tok.unk_id} bos={tok.bos_id} eos={tok.eos_id}, no pad)")
    return 0


def prepare_command(argv: list[str]) -> int:
    import signal

    from ds_parrots.data.prepare import prepare

    args = parse_args(PrepareArgs, argv, "ds-parrots prepare")

    def stop(signum, frame):
        raise KeyboardInterrupt  # unwinds like Ctrl-C: the pool stops, temporary files go

    # A scheduler's SIGTERM would otherwise kill us with no cleanup, leaving GBs of temporary files.
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        prepare(args.input, args.text_field, args.tokenizer, args.output, num_proc=args.num_proc,
                skip_empty=args.skip_empty, overwrite=args.overwrite, cache_dir=args.cache_dir)
    except KeyboardInterrupt:
        print(f"error: interrupted; nothing written to {args.output} (an existing pair there is unchanged)",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


# Commands parsed by tyro here; train parses its own flags and presets takes one.
DATA_COMMANDS = {"tokenizer": tokenizer_command, "prepare": prepare_command}
# Commands that live in their own module, each with `main(argv) -> int` (parsing its own flags).
MODULE_COMMANDS = {"topology": "ds_parrots.topology", "sweep": "ds_parrots.sweep",
                   "consolidate": "ds_parrots.consolidate", "export-hf": "ds_parrots.hf_export",
                   "reproduce": "ds_parrots.reproduce"}


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.strip())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "train":
        from ds_parrots.train import main as train_main

        return train_main(rest)
    if cmd == "presets":
        vocab = None
        if rest[:1] == ["--vocab-size"] and len(rest) == 2 and rest[1].isdigit():
            vocab = int(rest[1])
        elif rest:
            print(f"error: ds-parrots presets: unexpected {' '.join(rest)!r}; it takes only --vocab-size N, a "
                  "whole number (sizes are at the 32k vocabulary unless given)", file=sys.stderr)
            return 2
        print(presets_table(vocab))
        print("\nSynthetic tasks set the vocabulary from their tokenizer; sizes above use the vocab shown.")
        return 0
    if cmd in MODULE_COMMANDS:
        import importlib

        try:
            return importlib.import_module(MODULE_COMMANDS[cmd]).main(rest)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if cmd in DATA_COMMANDS:
        try:
            return DATA_COMMANDS[cmd](rest)
        except ConfigError as e:  # DataError and TokenizerError too: a user's mistake, one line, no traceback
            print(f"error: {e}", file=sys.stderr)
            return 2
    commands = ["train", "presets", *DATA_COMMANDS, *MODULE_COMMANDS]
    print(f"error: unknown command {cmd!r}; commands: {', '.join(commands)} (ds-parrots --help describes them)",
          file=sys.stderr)
    return 2


def console() -> None:
    """The `ds-parrots` console script (see ds_parrots.distributed.exit_process for why not sys.exit)."""
    from ds_parrots.distributed import exit_process

    exit_process(main())


if __name__ == "__main__":
    console()
