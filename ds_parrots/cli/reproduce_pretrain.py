"""`ds-parrots reproduce pretrain`: the paper's pre-training experiment, data to report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import tyro

from ds_parrots.cli.argv import parse_with_extras
from ds_parrots.errors import ConfigError


@dataclass
class PretrainArgs:
    """Reproduce the paper's pre-training experiment: dense models at several widths and MoEs at one width with
    several expert counts (matched active and total parameters), pre-trained on a mixture of a knowledge source
    and a math source, then scored on knowledge (closed-book QA, exact match) and math (test accuracy and the
    train - test generalization gap). The report checks the paper's three findings: knowledge tracks total
    parameters, dense and MoE alike; math tracks width, MoEs below the dense model of equal total; the MoEs'
    math gap is larger.

    The pipeline: ds-parrots data synth-corpus -> tokenizer train -> prepare (smoke and tiny: a corpus generated
    from --seed, biographies scored in TriviaQA's schema and word problems in GSM8k's, a held-out test split) ->
    train pretrain per model -> consolidate -> ds-parrots-eval --tasks triviaqa and ds-parrots-eval gap --tasks
    gsm8k (paper: your prepared --mixture, the paper's benchmarks from --bench-dir) -> summary.json, table.md,
    pretrain_{knowledge,math,gap}.png, benchmarks.png and report.md (per finding: the paper's claim, our figure,
    the numbers and verdict lines computed from summary.json).

    Writes <out-dir>/pretrain-<scale>/ (paper: pretrain-paper-<mixture>/): the corpus, one directory per run,
    consolidated/, eval/, logs/ and the report. Every step is resumable: a rerun reuses what finished (a run
    with results.json, a tokenizer, token files, consolidated weights, evaluation results of the same
    settings), resumes an interrupted run, and refuses to reuse a finished run or corpus of other settings. A
    step that fails is reported with its log; that model's later steps are skipped, the others go on, exit 1.

    On GPUs (--scale paper): --num-gpus N trains and evaluates each model with `deepspeed --num_gpus N`, one after
    another; --emit slurm writes one training job per model instead, and a rerun without --emit once they have
    finished consolidates, evaluates and reports (training nothing that finished)."""

    scale: Literal["smoke", "tiny", "paper"]
    """smoke: under 2 minutes on a CPU, checks the machinery (3 tiny models, 30 steps: no claim can show); tiny: a
    miniature on one CPU (dense d32/48/64/96 and d32 MoEs with 4/8/16 experts, L=4, 1,500 steps each: about 33
    minutes on 2 idle cores, extrapolated from short runs in bench/RESULTS.md); paper: the paper's 17 models
    (L=20, 63B tokens each), for GPUs."""
    out_dir: str = "runs/reproduce"
    """Parent folder; the reproduction writes to <out-dir>/pretrain-<scale>/ (paper: pretrain-paper-<mixture>/)."""
    dry_run: bool = False
    """Print the models with total / active parameters and every command of the pipeline; write nothing."""
    num_gpus: int = 1
    """Processes per training run and evaluation: 1 runs them in one process, more with `deepspeed --num_gpus N`."""
    ep_size: Optional[int] = None
    """Expert-parallel size of the MoE runs. None: the largest that divides both the experts and --num-gpus."""
    emit: Optional[Literal["slurm"]] = None
    """--scale paper: write one SLURM training job (one node, --num-gpus GPUs) per model instead of training here;
    submit <folder>/slurm/submit_all.sh, then rerun without --emit to evaluate and report."""
    sbatch: tyro.conf.UseAppendAction[tuple[str, ...]] = ()
    """With --emit slurm: extra #SBATCH options without their dashes, e.g. --sbatch partition=gpu (repeatable)."""
    seed: int = 0
    """Seed of model initialization, data order, and (smoke, tiny) the generated corpus."""
    steps: Optional[int] = None
    """Optimizer steps of every run. None: the scale's (--dry-run shows it; paper: 60,000)."""
    limit: Optional[int] = None
    """Documents scored per benchmark and split (ds-parrots-eval --limit). None: the scale's (tiny 300, smoke 4;
    paper: all)."""
    extra: str = ""
    """Train flags added to every run, as one quoted string, e.g. --extra "--train.micro-batch 8" to fit GPU
    memory. They may not set what the reproduction sets per run (model, data, steps, global batch, seed)."""
    mixture: str = "natural_language"
    """--scale paper: the mixture to pre-train on (a JSON file, or a shipped name: natural_language, math); run
    once per mixture. The CPU scales generate theirs."""
    data_root: Optional[str] = None
    """--scale paper: folder the mixture's token-file paths are relative to (None: the current directory)."""
    tokenizer: Optional[str] = None
    """--scale paper: the sentencepiece model the data was prepared with (checked against the 32k vocabulary)."""
    bench_dir: Optional[str] = None
    """--scale paper: folder of benchmark files in their public schema (docs/evaluation.md); needed to evaluate."""


PAPER_ONLY = ("mixture", "data_root", "tokenizer", "bench_dir")


def parse_args(argv: list[str]) -> PretrainArgs:
    return parse_with_extras(PretrainArgs, argv, "ds-parrots reproduce pretrain")


def check(args: PretrainArgs, given: list[str]) -> None:
    """Refuse flag combinations that cannot mean what they say, before anything is planned."""
    if args.dry_run and args.emit:
        raise ConfigError("--dry-run prints the runs and --emit slurm writes job scripts; choose one")
    if args.scale != "paper":
        for name in PAPER_ONLY:
            flag = "--" + name.replace("_", "-")
            if any(a == flag or a.startswith(flag + "=") for a in given):
                raise ConfigError(
                    f"{flag} is for --scale paper; --scale {args.scale} generates its corpus and evaluation sets"
                )
        if args.emit:
            raise ConfigError(
                f"--emit slurm is for --scale paper; --scale {args.scale} runs here (its data is made first)"
            )
    elif not (args.dry_run or args.emit) and args.bench_dir is None:
        raise ConfigError(
            "--scale paper evaluates every model on the paper's benchmarks: pass --bench-dir (local files in each "
            "benchmark's public schema, docs/evaluation.md), or --dry-run / --emit slurm to train only"
        )
    for flag, value in (("--steps", args.steps), ("--limit", args.limit), ("--num-gpus", args.num_gpus)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag}={value} must be >= 1")


@dataclass
class Plan:
    """A reproduction planned: its scale, folder, data and every run checked by train.py's parser."""

    exp: object
    """The scale's PretrainExperiment."""
    root: Path
    """<out-dir>/pretrain-<scale>[-<mixture>]."""
    data: object
    """Where the runs read their data and the evaluation its benchmarks (reproduce.pretrain.Data)."""
    grid: str
    """The grid name the manifest and the SLURM jobs record."""
    runs: dict
    """Run name -> PlannedRun, in the grid's order."""


def plan(args: PretrainArgs) -> Plan:
    from ds_parrots.reproduce.pretrain import data_of, points, root_of
    from ds_parrots.reproduce.pretrain_scales import PRETRAIN
    from ds_parrots.reproduce.probes import plan_runs

    exp = PRETRAIN[args.scale]
    root = root_of(args, exp)
    data = data_of(args, exp, root)
    grid = f"reproduce-pretrain-{args.scale}"
    runs = plan_runs(
        grid,
        exp.description,
        points(args, exp, data),
        exp.train_args,
        args.num_gpus,
        args.ep_size,
        args.extra,
        root,
    )
    return Plan(exp, root, data, grid, runs)


def main(argv: list[str]) -> int:
    from ds_parrots.reproduce.pretrain import header, reproduce
    from ds_parrots.reproduce.probes import check_finished_runs, omp_threads

    args = parse_args(argv)
    check(args, argv)
    planned = plan(args)
    exp, root, data, grid, runs = planned.exp, planned.root, planned.data, planned.grid, planned.runs
    if args.dry_run:
        print_dry_run(args, exp, root, runs, data)
        return 0
    if args.emit == "slurm":
        from ds_parrots.reproduce.probes import emit_jobs

        print(header(args, exp, runs, None))
        command = "ds-parrots reproduce pretrain --scale paper --emit slurm"
        emit_jobs(root, grid, exp.description, args.num_gpus, args.sbatch, runs, command)
        print(
            f"when the jobs are done: ds-parrots reproduce pretrain --scale paper --mixture {args.mixture} "
            f"--out-dir {args.out_dir} --bench-dir BENCH (consolidates, evaluates, reports; trains nothing that "
            "finished)"
        )
        return 0
    check_finished_runs(runs)
    with omp_threads(args.num_gpus) as threads:
        print(header(args, exp, runs, threads), flush=True)
        return reproduce(args, exp, root, runs, data)


def print_dry_run(args: PretrainArgs, exp, root: Path, runs: dict, data) -> None:
    """The grid, then every command the pipeline runs, in order."""
    from ds_parrots.reproduce import pretrain_steps as steps
    from ds_parrots.reproduce.pretrain import eval_argvs, header, outputs

    print(header(args, exp, runs, None))
    print("commands:")
    if data.corpus is not None:
        print(f"  {steps.corpus_command(data.corpus, args.seed, exp.corpus)}")
        print(f"  {steps.tokenizer_command(data.corpus, exp.corpus.vocab_size)}")
        for source in steps.SOURCES:
            print(f"  {steps.prepare_command(data.corpus, source)}")
    for r in runs.values():
        weights, eval_out, gap_out = outputs(root, r.name)
        eval_argv, gap_argv = eval_argvs(exp, weights, data, args.limit)
        print(f"  {r.command}")
        print(f"  {steps.consolidate_command(r.run_dir, weights)}")
        print(f"  {steps.eval_command(eval_argv, eval_out, args.num_gpus)}")
        print(f"  {steps.eval_command(gap_argv, gap_out, args.num_gpus)}")
