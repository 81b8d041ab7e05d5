"""`ds-parrots-eval`: offline evaluation of saved checkpoints.

    ds-parrots-eval CHECKPOINT [--tasks phonebook] [flags]          the synthetic task it trained on
    ds-parrots-eval CHECKPOINT --tasks commonsense,gsm8k --bench-dir bench/   benchmarks (lm-eval's tasks)
    ds-parrots-eval gap CHECKPOINT --bench-dir bench/ [--tasks gsm8k,hendrycks_math]  train - test (math)
    ds-parrots-eval tasks --bench-dir bench/ --out tasks/            the lm-eval YAMLs, for lm_eval --include_path
    ds-parrots-eval plot results/*.json --out figs/                 the paper's figures (PNG)

Benchmarks run on lm-evaluation-harness (pip install -e ".[eval]"): its own task definitions, reading local
files (docs/evaluation.md). CHECKPOINT is a run directory, one checkpoint step directory, a consolidated
.safetensors file (with its .json sidecar) or a Hugging Face Mistral / Mixtral folder. Launched on several
ranks (`deepspeed --num_gpus 8 eval/cli.py ...` or torchrun), each rank scores its share of the documents
(lm-eval's rank / world_size protocol) and rank 0 writes the results; one CPU process works for small models.
`<command> --help` lists the flags.
"""

from __future__ import annotations

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


@dataclass(kw_only=True)
class RunOptions:
    """How the model runs, for evaluation and the gap alike (keyword-only: they follow each command's own)."""

    bootstrap_iters: int = 100000
    """lm-eval's bootstrap resamples for standard errors of non-mean metrics (its default; 0: none)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: this rank's GPU when there is one, else the CPU."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights and activations in evaluation (bfloat16 halves GPU memory; scores may move slightly)."""
    progress: bool = True
    """Progress bars on rank 0."""


@dataclass
class EvalArgs(RunOptions):
    """Score a checkpoint on its synthetic task, or on the paper's benchmarks through lm-evaluation-harness
    (lm-eval's own task definitions, local files); writes a results JSON with the model's total and active
    parameters (the input of `ds-parrots-eval plot`)."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A run directory (newest checkpoint), a checkpoint step directory, a consolidated .safetensors file, or a
    Hugging Face Mistral / Mixtral folder (ds-parrots export-hf, or an outside baseline with tokenizer.json)."""
    tasks: Optional[str] = None
    """Comma-separated: the synthetic task the checkpoint trained on (phonebook, shortest-path, two-hop),
    benchmark names (triviaqa, nq_open, hotpotqa, webquestions, complexwebquestions, arc_easy, arc_challenge,
    commonsense_qa, hellaswag, openbookqa, piqa, sciq, siqa, winogrande, gsm8k, gsm_hard, hendrycks_math,
    minerva_math, svamp; docs/evaluation.md names the lm-eval task of each) or categories (world_knowledge,
    commonsense, math, all). None: the checkpoint's synthetic task."""
    bench_dir: Optional[Path] = None
    """Folder of benchmark files in their public Hugging Face schema: <bench-dir>/<name>/<split>.parquet or
    .jsonl. Needed for benchmark tasks; nothing is downloaded."""
    few_shot: Optional[str] = None
    """Few-shot examples: one number for every benchmark, or name=k pairs ('triviaqa=5,gsm8k=8'; names may be
    categories or 'all'). None: the paper's setting (world knowledge 5, commonsense 0, GSM8k / GSM-Hard /
    SVAMP 8, MATH 4). lm-eval draws them per document (seed 1234)."""
    limit: Optional[int] = None
    """Score at most this many documents per lm-eval task (quick looks; None: all)."""
    batch_size: int = 32
    """Sequences per forward pass."""
    tokenizer: Optional[Path] = None
    """Sentencepiece .model, or a folder with tokenizer.json. None: the HF folder's tokenizer.json, else the
    tokenizer the run trained with (--data.tokenizer), turned into the tokenizer.json export-hf writes."""
    out: Optional[Path] = None
    """Results JSON. None: eval_results.json in the run directory, or <file>.eval.json beside a .safetensors."""
    context_prefix: Literal["none", "eos"] = "none"
    """none: contexts as lm_eval --model hf tokenizes them on our export (nothing added). eos: every context
    starts with </s>, as documents followed </s> in pre-training (the old ds-parrots-eval scoring)."""
    long_prompts: Literal["error", "truncate"] = "error"
    """A generation prompt longer than the model's window minus the task's generation budget. error: a
    one-line error naming the task and document. truncate: keep its last tokens, as lm_eval --model hf does.
    (Log-likelihood contexts are always left-truncated as lm-eval does; the results count them.)"""
    log_samples: bool = False
    """Also write lm-eval's per-document samples (prompt, responses, filtered answer, metrics) as
    <out>.samples/<task>.jsonl."""


@dataclass
class GapArgs(RunOptions):
    """Generalization gap of math reasoning: the same lm-eval task on training problems and on test problems
    (GSM8k, MATH), reported as train - test."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A run directory, a checkpoint step directory, a consolidated .safetensors file, or a HF folder."""
    bench_dir: Path
    """Folder holding gsm8k/{train,test} and hendrycks_math/{train,test} files (.parquet or .jsonl, public
    schema; MATH may also be in math/)."""
    tasks: str = "gsm8k,hendrycks_math"
    """Comma-separated math benchmarks with train and test splits (gsm8k, hendrycks_math, minerva_math, svamp)."""
    limit: Optional[int] = None
    """At most this many problems per split and lm-eval task (None: all)."""
    few_shot: Optional[str] = None
    """As for evaluation: one number or name=k pairs (None: the paper's setting)."""
    batch_size: int = 32
    """Sequences per forward pass."""
    tokenizer: Optional[Path] = None
    """As for evaluation: a sentencepiece .model or a folder with tokenizer.json."""
    out: Optional[Path] = None
    """Results JSON. None: gap_results.json in the run directory, or <file>.gap.json beside a .safetensors."""
    context_prefix: Literal["none", "eos"] = "none"
    """As for evaluation: none (lm_eval --model hf's tokenization) or eos (</s> before every context)."""
    long_prompts: Literal["error", "truncate"] = "error"
    """As for evaluation: error, or truncate a too-long generation prompt to its last tokens (lm-eval)."""


@dataclass
class TasksArgs:
    """Write the lm-eval task YAMLs ds-parrots-eval runs (lm-eval's tasks, reading the local files), to compare
    with `lm_eval --model hf --model_args pretrained=EXPORT --include_path DIR --tasks ...`."""

    bench_dir: Path
    """Folder of benchmark files, as for evaluation."""
    out: Path
    """Folder for the YAML files (one per lm-eval task)."""
    tasks: str = "all"
    """Comma-separated benchmark names or categories (as for evaluation)."""
    few_shot: Optional[str] = None
    """As for evaluation (written into each YAML as num_fewshot)."""


def parse_few_shot(spec: Optional[str]) -> Optional[dict[str, int]]:
    """'5' -> {'all': 5}; 'triviaqa=5,math=4' -> {'triviaqa': 5, 'math': 4}; None stays None."""
    if spec is None:
        return None
    spec = spec.strip()
    if spec.isdigit():
        return {"all": int(spec)}
    out = {}
    for part in spec.split(","):
        name, _, k = part.partition("=")
        if not k.strip().isdigit():
            raise ConfigError(
                f"--few-shot {spec!r}: expected a number or name=k pairs like 'triviaqa=5,gsm8k=8'"
            )
        out[name.strip()] = int(k)
    return out


def _lm(args, model, tok, device, rank):
    from ds_parrots_eval.lm import ParrotLM

    return ParrotLM(
        model,
        tok,
        device,
        args.batch_size,
        args.context_prefix,
        args.long_prompts,
        progress=args.progress and rank == 0,
    )


def _engine(args) -> dict:
    """What the results record about how benchmarks were scored."""
    return {
        "engine": "lm-evaluation-harness",
        "context_prefix": args.context_prefix,
        "long_prompts": args.long_prompts,
    }


def evaluate_command(argv: list[str]) -> int:
    args = tyro.cli(EvalArgs, args=argv, prog="ds-parrots-eval", description=EvalArgs.__doc__)
    from ds_parrots_eval import runtime as rt
    from ds_parrots_eval.synthetic import SYNTHETIC_TASKS, evaluate_synthetic

    start = time.perf_counter()
    meta = rt.meta_of(args.checkpoint)
    names = [t.strip() for t in (args.tasks or meta.get("task_name") or "").split(",") if t.strip()]
    if not names:
        raise ConfigError(
            f"{args.checkpoint} is a pre-training checkpoint: pass --tasks (benchmark names or "
            "world_knowledge,commonsense,math) and --bench-dir"
        )
    synthetic = [n for n in names if n in SYNTHETIC_TASKS]
    bench = [n for n in names if n not in SYNTHETIC_TASKS]
    few_shot = parse_few_shot(args.few_shot)  # bad flags and bad files fail before the model loads
    if bench:
        rt.lm_eval_installed()
        from ds_parrots_eval.harness.catalog import expand, few_shot_counts
        from ds_parrots_eval.harness.task_files import plan

        if args.bench_dir is None:
            raise ConfigError(
                f"--tasks {','.join(bench)}: benchmark tasks need --bench-dir (local files in each "
                "benchmark's public schema)"
            )
        bench = expand(bench)
        plan(bench, args.bench_dir, few_shot_counts(bench, few_shot))
    out = args.out or rt.default_out(args.checkpoint, "eval")
    rank, world = rt.distributed()
    device = rt.device(args.device, rank)
    model, meta = rt.load(args.checkpoint, device, args.dtype)
    results = rt.header(args.checkpoint, meta, "benchmarks" if bench else "synthetic")
    results["synthetic"] = {}
    for name in synthetic:
        results["synthetic"][name] = evaluate_synthetic(
            model, meta, name, args.checkpoint, device, args.batch_size, args.limit, rank, world
        )
        if rank == 0:
            print(f"{name}: {results['synthetic'][name]['summary']}")
    samples = None
    if bench:
        from ds_parrots_eval.harness.run import run_benchmarks

        lm = _lm(
            args,
            model,
            rt.tokenizer(meta, args.tokenizer, model.cfg.vocab_size, args.checkpoint),
            device,
            rank,
        )
        scored, samples = run_benchmarks(
            lm, bench, args.bench_dir, few_shot, args.limit, args.log_samples, args.bootstrap_iters
        )
        if rank == 0:
            results.update(scored)
            results.update(_engine(args), truncated_contexts=lm.truncated)
            for name, r in scored["tasks"].items():
                print(f"{name:<22} {r['category']:<16} {r['metric']:<28} {r['score']:.4f}  (n={r['n']})")
            for cat, v in scored["categories"].items():
                print(f"{'[' + cat + ']':<22} {'':<16} {'mean':<28} {v:.4f}")
    results["seconds"] = round(time.perf_counter() - start, 1)
    results["world_size"] = world
    rt.write(results, out, rank)
    if samples and rank == 0:
        print(f"samples in {rt.write_samples(samples, out)}")
    return 0


def gap_command(argv: list[str]) -> int:
    args = tyro.cli(GapArgs, args=argv, prog="ds-parrots-eval gap", description=GapArgs.__doc__)
    from ds_parrots_eval import runtime as rt

    rt.lm_eval_installed()
    from ds_parrots_eval.gap import run_gap

    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    rank, world = rt.distributed()
    device = rt.device(args.device, rank)
    model, meta = rt.load(args.checkpoint, device, args.dtype)
    tok = rt.tokenizer(meta, args.tokenizer, model.cfg.vocab_size, args.checkpoint)
    gap = run_gap(
        _lm(args, model, tok, device, rank),
        args.bench_dir,
        names,
        args.limit,
        parse_few_shot(args.few_shot),
        args.bootstrap_iters,
    )
    results = {**rt.header(args.checkpoint, meta, "gap"), "gap": gap, "world_size": world, **_engine(args)}
    if rank == 0:
        for name, g in gap.items():
            print(f"{name}: train {g['train']:.4f} - test {g['test']:.4f} = gap {g['gap']:+.4f}")
    rt.write(results, args.out or rt.default_out(args.checkpoint, "gap"), rank)
    return 0


def tasks_command(argv: list[str]) -> int:
    args = tyro.cli(TasksArgs, args=argv, prog="ds-parrots-eval tasks", description=TasksArgs.__doc__)
    from ds_parrots_eval import runtime as rt

    rt.lm_eval_installed()
    from ds_parrots_eval.harness.catalog import expand, few_shot_counts
    from ds_parrots_eval.harness.task_files import plan, write

    names = expand([t.strip() for t in args.tasks.split(",") if t.strip()])
    tasks = plan(names, args.bench_dir, few_shot_counts(names, parse_few_shot(args.few_shot)))
    write(tasks, args.out)
    print(
        f"{len(tasks)} task YAMLs in {args.out}; compare with:\n  lm_eval --model hf --model_args "
        f"pretrained=EXPORT,dtype=float32 --include_path {args.out} --tasks {','.join(t.task for t in tasks)}"
    )
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
        if argv[0] == "tasks":
            return tasks_command(argv[1:])
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
