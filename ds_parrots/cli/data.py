"""`ds-parrots tokenizer train`, `ds-parrots prepare` and `ds-parrots data synth-corpus`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ds_parrots.data.synthetic_corpus import KnowledgeConfig, MathConfig


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


@dataclass(kw_only=True)
class SynthCorpusArgs(MathConfig, KnowledgeConfig):
    """Generate a small pre-training corpus and its evaluation sets, deterministic from --seed: biographies of
    synthetic people (knowledge, scored closed-book in TriviaQA's schema) and GSM8k-style word problems (math,
    a training split in the corpus and a held-out test split). Writes corpus/*.jsonl (for 'ds-parrots
    tokenizer train' and 'ds-parrots prepare'), mixture.json (for 'ds-parrots train pretrain') and eval/ (a
    --bench-dir for 'ds-parrots-eval --tasks triviaqa,gsm8k' and 'ds-parrots-eval gap --tasks gsm8k')."""

    out: Path
    """Folder to write (created with its parents); written under a temporary name, then renamed into place."""
    seed: int = 0
    """Every byte written is a function of the seed and the sizes."""
    force: bool = False
    """Replace a non-empty --out, if this command wrote it (it holds our manifest.json); others are refused."""


def parse_args(cls, argv: list[str], prog: str):
    """The dataclass `cls` from argv; tyro prints --help (field docstrings) and usage errors itself."""
    import inspect

    import tyro

    return tyro.cli(cls, args=argv, prog=prog, description=inspect.cleandoc(cls.__doc__))


def tokenizer_command(argv: list[str]) -> int:
    if argv[:1] != ["train"]:
        print(
            "usage: ds-parrots tokenizer train --input F [F ...] --output PREFIX [flags]  ('train --help' lists "
            "the flags)",
            file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr,
        )
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    import time

    from ds_parrots.data.tokenizer import SentencePieceTokenizer, train_sentencepiece

    args = parse_args(TokenizerTrainArgs, argv[1:], "ds-parrots tokenizer train")
    start = time.perf_counter()
    model = train_sentencepiece(
        args.input,
        args.output,
        args.vocab_size,
        args.model_type,
        args.text_field,
        args.num_threads,
        args.input_sentence_size,
        args.character_coverage,
        args.byte_fallback,
    )
    tok = SentencePieceTokenizer(model)
    print(
        f"trained {tok.vocab_size}-piece {args.model_type} tokenizer in {time.perf_counter() - start:.1f} s: "
        f"{model} (unk={tok.unk_id} bos={tok.bos_id} eos={tok.eos_id}, no pad)"
    )
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
        prepare(
            args.input,
            args.text_field,
            args.tokenizer,
            args.output,
            num_proc=args.num_proc,
            skip_empty=args.skip_empty,
            overwrite=args.overwrite,
            cache_dir=args.cache_dir,
        )
    except KeyboardInterrupt:
        print(
            f"error: interrupted; nothing written to {args.output} (an existing pair there is unchanged)",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def data_command(argv: list[str]) -> int:
    usage = (
        "ds-parrots data synth-corpus --out DIR [--seed S] [--people N] [--math-train N] [flags]  "
        "('synth-corpus --help' lists the flags)"
    )
    if argv[:1] in (["-h"], ["--help"]):
        print(f"usage: {usage}")
        return 0
    if argv[:1] != ["synth-corpus"]:
        got = f"unknown subcommand {argv[0]!r}" if argv else "no subcommand"
        print(f"error: ds-parrots data: {got}; the subcommand is synth-corpus: {usage}", file=sys.stderr)
        return 2
    import dataclasses
    import time

    from ds_parrots.data.synthetic_corpus import write_corpus

    args = parse_args(SynthCorpusArgs, argv[1:], "ds-parrots data synth-corpus")
    knowledge, math = (
        cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
        for cls in (KnowledgeConfig, MathConfig)
    )
    start = time.perf_counter()
    written = write_corpus(args.out, args.seed, knowledge, math, force=args.force)
    rows = {rel: f["rows"] for rel, f in written.files.items()}
    megabytes = sum(f["bytes"] for f in written.files.values()) / 1e6
    out = args.out
    print(
        f"wrote {out} in {time.perf_counter() - start:.1f} s ({megabytes:.1f} MB, seed {args.seed}): "
        f"corpus knowledge {rows['corpus/knowledge.jsonl']} documents ({args.people} people), math "
        f"{rows['corpus/math.jsonl']} problems; eval triviaqa {rows['eval/triviaqa/train.jsonl']} train / "
        f"{rows['eval/triviaqa/validation.jsonl']} validation questions, gsm8k {rows['eval/gsm8k/train.jsonl']} "
        f"train / {rows['eval/gsm8k/test.jsonl']} test problems\n"
        "next:\n"
        f"  ds-parrots tokenizer train --input {out}/corpus/knowledge.jsonl {out}/corpus/math.jsonl "
        f"--vocab-size 2048 --output {out}/tok/spm\n"
        f"  ds-parrots prepare --input {out}/corpus/knowledge.jsonl --tokenizer {out}/tok/spm.model "
        f"--output {out}/tokens/knowledge\n"
        f"  ds-parrots prepare --input {out}/corpus/math.jsonl --tokenizer {out}/tok/spm.model "
        f"--output {out}/tokens/math\n"
        f"  ds-parrots train pretrain --data.mixture {out}/mixture.json --data.data-root {out} "
        f"--data.tokenizer {out}/tok/spm.model [model and training flags]\n"
        f"  ds-parrots-eval RUN --tasks triviaqa,gsm8k --bench-dir {out}/eval\n"
        f"  ds-parrots-eval gap RUN --tasks gsm8k --bench-dir {out}/eval"
    )
    return 0


# Commands parsed by tyro here; train parses its own flags and presets takes one.
DATA_COMMANDS = {"tokenizer": tokenizer_command, "prepare": prepare_command, "data": data_command}
