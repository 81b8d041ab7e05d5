"""`ds-parrots-eval`: offline evaluation of saved checkpoints.

    ds-parrots-eval CHECKPOINT [--tasks phonebook] [flags]          the synthetic task it trained on
    ds-parrots-eval CHECKPOINT --tasks commonsense,gsm8k --bench-dir bench/   benchmark suites
    ds-parrots-eval gap CHECKPOINT --bench-dir bench/ [--tasks gsm8k,math]  train - test accuracy (math)
    ds-parrots-eval plot results/*.json --out figs/                 the paper's figures (PNG)

CHECKPOINT is a run directory, one checkpoint step directory, a consolidated .safetensors file (with its
.json sidecar) or a Hugging Face Mistral / Mixtral folder. Launched on several ranks
(`deepspeed --num_gpus 8 eval/cli.py ...` or torchrun), each rank scores a shard of every task and rank 0
writes the results; one CPU process works for small models.
`<command> --help` lists the flags.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro

from ds_parrots.cli.argv import strip_local_rank
from ds_parrots.cli.errors import run_command
from ds_parrots.errors import ConfigError

USAGE = __doc__


@dataclass
class EvalArgs:
    """Score a checkpoint on its synthetic task or on the paper's benchmark suites; writes a results JSON
    with the model's total and active parameters (the input of `ds-parrots-eval plot`)."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A run directory (newest checkpoint), a checkpoint step directory, a consolidated .safetensors file, or a
    Hugging Face Mistral / Mixtral folder (ds-parrots export-hf, or an outside baseline with tokenizer.model)."""
    tasks: Optional[str] = None
    """Comma-separated: the synthetic task the checkpoint trained on (phonebook, shortest-path, two-hop),
    benchmark names (triviaqa, nq_open, hotpotqa, webquestions, complexwebquestions, arc_easy, arc_challenge,
    commonsense_qa, hellaswag, openbookqa, piqa, sciq, siqa, winogrande, gsm8k, gsm_hard, hendrycks_math (MATH
    alone), minerva_math, svamp) or categories (world_knowledge, commonsense, math, all; 'math' is the whole
    category). None: the checkpoint's synthetic task."""
    bench_dir: Optional[Path] = None
    """Folder of benchmark files in their public Hugging Face schema: <bench-dir>/<name>/<split>.parquet or
    .jsonl. Needed for benchmark tasks; nothing is downloaded."""
    few_shot: Optional[str] = None
    """Few-shot examples: one number for every benchmark, or name=k pairs ('triviaqa=5,gsm8k=8'). None: each
    benchmark's default (world knowledge 5, commonsense 0, GSM8k 8, MATH 4)."""
    limit: Optional[int] = None
    """Score at most this many examples per task (quick looks; None: all)."""
    batch_size: int = 32
    """Sequences per forward pass."""
    tokenizer: Optional[Path] = None
    """Sentencepiece .model for benchmarks. None: the tokenizer the run trained with (--data.tokenizer)."""
    out: Optional[Path] = None
    """Results JSON. None: eval_results.json in the run directory, or <file>.eval.json beside a .safetensors."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: this rank's GPU when there is one, else the CPU."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights and activations in evaluation (bfloat16 halves GPU memory; scores may move slightly)."""
    progress: bool = True
    """Progress bars on rank 0."""


@dataclass
class GapArgs:
    """Generalization gap of math reasoning: the same scorer on training problems and on test problems
    (GSM8k, MATH), reported as train - test."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A run directory, a checkpoint step directory, or a consolidated .safetensors file."""
    bench_dir: Path
    """Folder holding gsm8k/{train,test} and math/{train,test} files (.parquet or .jsonl, public schema)."""
    tasks: str = "gsm8k,math"
    """Comma-separated math benchmarks with train and test splits."""
    limit: Optional[int] = None
    """At most this many problems per split (None: all)."""
    few_shot: Optional[str] = None
    """As for evaluation: one number or name=k pairs (None: the defaults)."""
    batch_size: int = 32
    """Sequences per forward pass."""
    tokenizer: Optional[Path] = None
    """Sentencepiece .model. None: the tokenizer the run trained with."""
    out: Optional[Path] = None
    """Results JSON. None: gap_results.json in the run directory, or <file>.gap.json beside a .safetensors."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: this rank's GPU when there is one, else the CPU."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights and activations in evaluation."""
    progress: bool = True
    """Progress bars on rank 0."""


def parse_few_shot(spec: Optional[str], names: list[str]) -> Optional[dict[str, int]]:
    if spec is None:
        return None
    spec = spec.strip()
    if spec.isdigit():
        return {n: int(spec) for n in names}
    out = {}
    for part in spec.split(","):
        name, _, k = part.partition("=")
        if not k.strip().isdigit():
            raise ConfigError(f"--few-shot {spec!r}: expected a number or name=k pairs like 'triviaqa=5,gsm8k=8'")
        out[name.strip()] = int(k)
    return out


def _distributed() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    from ds_parrots.parallel.process_group import ensure_process_group

    ensure_process_group()
    import torch.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def _device(choice: str, rank: int):
    import torch

    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no GPU is visible to this process")
        local = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
        return torch.device("cuda", local)
    return torch.device("cpu")


def _default_out(checkpoint: Path, stem: str) -> Path:
    checkpoint = Path(checkpoint)
    if checkpoint.suffix == ".safetensors":
        return checkpoint.with_suffix(f".{stem}.json")
    from ds_parrots.checkpoints.load import resolve

    return resolve(checkpoint)[1] / f"{stem}_results.json"


def _tokenizer(meta: dict, override: Optional[Path], model_vocab: int, checkpoint: Path):
    from ds_parrots.data.tokenizer import SentencePieceTokenizer, check_model_vocab

    path = override or meta.get("tokenizer")
    if path is None:
        raise ConfigError(f"{checkpoint} records no tokenizer (it was trained without --data.tokenizer); pass "
                          "--tokenizer PATH.model, the sentencepiece model its token files were prepared with")
    if override is None and not Path(path).is_file():
        raise ConfigError(f"{checkpoint} was trained with tokenizer {path}, which is not there any more; pass "
                          "--tokenizer with its new location")
    tok = SentencePieceTokenizer(path)
    check_model_vocab(model_vocab, tok.vocab_size, path)
    return tok


def _load(checkpoint: Path, device, dtype: str):
    import torch

    from ds_parrots.checkpoints.load import load_model

    model, meta = load_model(checkpoint, torch.bfloat16 if dtype == "bfloat16" else torch.float32)
    return model.to(device), meta


def _header(checkpoint: Path, meta: dict, kind: str) -> dict:
    from ds_parrots.checkpoints.load import model_config
    from ds_parrots.models.counting import count_params

    cfg = model_config(meta, checkpoint)
    return {"kind": kind, "checkpoint": str(checkpoint), "source": meta.get("source"), "step": meta.get("step"),
            "params": count_params(cfg).as_dict(), "model": meta["model"], "moe_backend": meta.get("moe_backend"),
            "task_name": meta.get("task_name")}


def _write(results: dict, out: Path, rank: int) -> None:
    if rank != 0:
        return
    from ds_parrots.fileio import write_text_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(results, indent=2) + "\n")
    print(f"results in {out}")


def evaluate_command(argv: list[str]) -> int:
    args = tyro.cli(EvalArgs, args=argv, prog="ds-parrots-eval", description=EvalArgs.__doc__)
    from ds_parrots_eval.synthetic import SYNTHETIC_TASKS, evaluate_synthetic

    rank, world = _distributed()
    device = _device(args.device, rank)
    start = time.perf_counter()
    model, meta = _load(args.checkpoint, device, args.dtype)
    names = [t.strip() for t in (args.tasks or meta.get("task_name") or "").split(",") if t.strip()]
    if not names:
        raise ConfigError(f"{args.checkpoint} is a pre-training checkpoint: pass --tasks (benchmark names or "
                          "world_knowledge,commonsense,math) and --bench-dir")
    synthetic = [n for n in names if n in SYNTHETIC_TASKS]
    bench = [n for n in names if n not in SYNTHETIC_TASKS]
    few_shot = parse_few_shot(args.few_shot, bench)  # bad flags fail before any scoring
    if bench and args.bench_dir is None:
        raise ConfigError(f"--tasks {','.join(bench)}: benchmark tasks need --bench-dir (local files in each "
                          "benchmark's public schema)")
    results = _header(args.checkpoint, meta, "benchmarks" if bench else "synthetic")
    results["synthetic"] = {}
    for name in synthetic:
        results["synthetic"][name] = evaluate_synthetic(model, meta, name, args.checkpoint, device,
                                                        args.batch_size, args.limit, rank, world)
        if rank == 0:
            print(f"{name}: {results['synthetic'][name]['summary']}")
    if bench:
        from ds_parrots_eval.benchmarks.runner import run_benchmarks
        from ds_parrots_eval.lm import ModelLM

        tok = _tokenizer(meta, args.tokenizer, model.cfg.vocab_size, args.checkpoint)
        lm = ModelLM(model, tok, device, args.batch_size)
        scored = run_benchmarks(lm, bench, args.bench_dir, few_shot, args.limit, rank,
                                world, progress=args.progress and rank == 0, batch_size=args.batch_size)
        results.update(scored)
        if rank == 0:
            for name, r in scored["tasks"].items():
                print(f"{name:<22} {r['category']:<16} {r['metric']} {r['score']:.4f}  (n={r['n']})")
            for cat, v in scored["categories"].items():
                print(f"{'[' + cat + ']':<22} {'':<16} mean {v:.4f}")
    results["seconds"] = round(time.perf_counter() - start, 1)
    results["world_size"] = world
    _write(results, args.out or _default_out(args.checkpoint, "eval"), rank)
    return 0


def gap_command(argv: list[str]) -> int:
    args = tyro.cli(GapArgs, args=argv, prog="ds-parrots-eval gap", description=GapArgs.__doc__)
    from ds_parrots_eval.gap import run_gap
    from ds_parrots_eval.lm import ModelLM

    rank, world = _distributed()
    device = _device(args.device, rank)
    model, meta = _load(args.checkpoint, device, args.dtype)
    tok = _tokenizer(meta, args.tokenizer, model.cfg.vocab_size, args.checkpoint)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    lm = ModelLM(model, tok, device, args.batch_size)
    gap = run_gap(lm, args.bench_dir, tuple(names), args.limit, parse_few_shot(args.few_shot, names), rank, world,
                  progress=args.progress and rank == 0, batch_size=args.batch_size)
    results = {**_header(args.checkpoint, meta, "gap"), "gap": gap, "world_size": world}
    if rank == 0:
        for name, g in gap.items():
            print(f"{name}: train {g['train']:.4f} - test {g['test']:.4f} = gap {g['gap']:+.4f}")
    _write(results, args.out or _default_out(args.checkpoint, "gap"), rank)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = strip_local_rank(argv)
    if not argv or argv[0] in ("-h", "--help") and len(argv) == 1:
        print(USAGE.strip())
        return 0 if argv else 2
    def command() -> int:
        if argv[0] == "plot":
            from ds_parrots_eval.plot import main as plot_main

            return plot_main(argv[1:])
        if argv[0] == "gap":
            return gap_command(argv[1:])
        return evaluate_command(argv)

    try:
        return run_command(command)
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            from ds_parrots.parallel.process_group import shutdown

            shutdown()


def console() -> None:
    """The `ds-parrots-eval` console script (exit_process: see ds_parrots.parallel.process_group)."""
    from ds_parrots.parallel.process_group import exit_process

    exit_process(main())


if __name__ == "__main__":
    console()
