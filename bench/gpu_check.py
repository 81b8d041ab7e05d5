"""The GPU check: one run of under 8 minutes on one H100 / H200 that measures what the training step does there.

    bench/gpu_check.sh                          # on the GPU machine: installs what is missing, then this
    python bench/gpu_check.py [--quick] [--budget-s 360] [--out DIR]
    python bench/gpu_check.py --device cpu --tiny   # the whole pipeline on tiny models, on a CPU, in seconds

Prints, and writes to DIR/gpu_check.json and DIR/gpu_check.md (DIR: --out, else $OUT when set):
  (a) bf16 training-step tokens/s and MFU of dense d=1024 and d=2048 (L=20, seq 2048) and of MoE d=512 and
      d=1024 with E = 8 and 64, top-2, on both MoE backends, each MoE against its dense twin (bench_step's
      dense_twin: ffn = top_k x the expert's, so equal active parameters but the router) in the same run;
  (b) the peak GPU memory of each;
  (c) bf16 against fp32 from the same weights over the same batches: the largest relative loss difference;
  (d) torch.compile of a dense and an MoE model, on or off, whichever is faster, and the ratio.
Goals, printed as verdicts (not exit codes): dense MFU >= 45%, MoE tokens/s >= 0.8x its dense twin.

Every step goes through our engine (parallel.initialize.parallelize, training.step.train_step) in one process,
ZeRO-2 (the native backend cannot run ZeRO-3), AdamW, on one fixed batch of random tokens. A step is
--micro-batch sequences x --accumulation micro-batches; its time is the median of --steps after --warmup.
MFU = models.counting.flops_per_token (PaLM's 6N + 12LHQT) x tokens/s / peak, the peak being --peak-tflops,
else the GPU's datasheet bf16 dense figure (training/throughput.py), else a bf16 GEMM measured in the run.
A measurement that fails (out of memory, a kernel the GPU lacks) is reported and the rest go on; one not
started within --budget-s is reported as skipped. Exit code: 0 when all ran, 1 when one failed or was
skipped, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from bench_step import gemm_peak_tflops  # noqa: E402
from gpu_check_report import (  # noqa: E402
    BF16_LOSS_RTOL,
    FULL,
    QUICK,
    TINY,
    Profile,
    Spec,
    add_twin_ratios,
    agreement,
    compile_choice,
    compile_specs,
    exit_code,
    goal_verdicts,
    grid,
    precision_specs,
    render_markdown,
    row_metrics,
    write_outputs,
)

from ds_parrots.models.counting import count_params, flops_per_token  # noqa: E402

FLAGS = ("warmup", "steps", "precision_steps", "micro_batch", "accumulation", "seq_len")


class UsageError(Exception):
    """Arguments this machine cannot run (no GPU): exit code 2, like a bad flag."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"gpu_check: error: {message} (see --help)\n")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = _Parser(prog="gpu_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--device", choices=["auto", "cuda", "cpu"], default="auto", help="auto: cuda if available"
    )
    p.add_argument("--tiny", action="store_true", help="tiny models (d=64, L=2, seq 64, 2 steps)")
    p.add_argument("--quick", action="store_true", help="1 warm-up and 3 timed steps, 10 precision steps")
    helps = (
        "untimed steps first",
        "timed steps (median reported)",
        "steps of the bf16-vs-fp32 check",
        "sequences per forward",
        "micro-batches per optimizer step",
        "tokens per sequence",
    )
    for name, what in zip(FLAGS, helps):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"{what} (default: the mode's)")
    p.add_argument("--zero-stage", type=int, choices=[0, 1, 2], default=2, help="native runs ZeRO <= 2 only")
    p.add_argument("--backends", nargs="+", choices=["autoep", "native"], default=["autoep", "native"])
    p.add_argument(
        "--skip", nargs="+", choices=["precision", "compile"], default=[], help="sections to leave out"
    )
    p.add_argument(
        "--compile-backend", help="torch.compile backend (default: inductor on a GPU, aot_eager on CPU)"
    )
    p.add_argument(
        "--budget-s", type=float, default=360.0, help="start nothing after this many seconds (0: none)"
    )
    p.add_argument(
        "--peak-tflops", type=float, help="peak MFU divides by (default: datasheet, else measured)"
    )
    p.add_argument("--out", help="directory for gpu_check.json and gpu_check.md (default: $OUT when set)")
    args = p.parse_args(argv)
    for name in FLAGS:
        value, low = getattr(args, name), 0 if name == "warmup" else 1
        if value is not None and value < low:
            p.error(f"--{name.replace('_', '-')}={value} must be >= {low}")
    if not (args.budget_s >= 0 and math.isfinite(args.budget_s)):
        p.error(f"--budget-s={args.budget_s} must be a finite number >= 0 (0: no budget)")
    if args.peak_tflops is not None and not (args.peak_tflops > 0 and math.isfinite(args.peak_tflops)):
        p.error(f"--peak-tflops={args.peak_tflops} must be a finite number > 0")
    if args.device == "cpu" and not args.tiny:
        p.error("--device cpu runs only with --tiny (the full grid, d=2048 L=20 seq 2048, needs a GPU)")
    args.out = args.out or os.environ.get("OUT") or None
    return args


def profile(args: argparse.Namespace) -> Profile:
    """The mode's profile (--tiny or the full grid), then --quick, then the flags given."""
    prof = TINY if args.tiny else FULL
    if args.quick:
        prof = dataclasses.replace(prof, **{k: min(v, getattr(prof, k)) for k, v in QUICK.items()})
    return dataclasses.replace(prof, **{k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None})


@dataclass
class Measured:
    seconds: float
    """Median seconds of a timed step."""
    tokens: int
    flops: float
    """Model FLOPs of one step, as train_step counts them."""
    first_step_s: float
    losses: list[float]
    """Every step's LM loss, warm-up included."""
    peak_mem_gib: Optional[float]


def compile_blocks(module, moe: bool, backend: str) -> None:
    """torch.compile each transformer block in place (one graph, which every block reuses). In an MoE only the
    attention and the norms: dropless routing has data-dependent shapes, so the MoE layer stays eager."""
    import torch

    for name in ("recompile_limit", "cache_size_limit"):  # torch renamed it; the new name first
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(64, getattr(torch._dynamo.config, name)))
            break
    for layer in module.model.layers:
        for part in (
            (layer.input_layernorm, layer.self_attn, layer.post_attention_layernorm) if moe else (layer,)
        ):
            part.compile(backend=backend)


def measure(
    spec: Spec,
    prof: Profile,
    device: str,
    zero_stage: int,
    precision: str,
    warmup: int,
    steps: int,
    compile_backend: Optional[str] = None,
) -> Measured:
    import torch
    from deepspeed.accelerator import get_accelerator

    from ds_parrots.config import MoEConfig, OptimConfig, TrainConfig
    from ds_parrots.models import build_model
    from ds_parrots.parallel.initialize import parallelize
    from ds_parrots.training.step import train_step

    acc, cuda = get_accelerator(), device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    train = TrainConfig(
        steps=warmup + steps,
        global_batch=prof.micro_batch * prof.accumulation,
        micro_batch=prof.micro_batch,
        zero_stage=zero_stage,
        precision=precision,
    )
    torch.manual_seed(0)
    with torch.device(device):  # filled where it runs: 4B parameters are slow to initialize on the host
        model = build_model(spec.cfg)
    moe = MoEConfig(backend=spec.backend if spec.cfg.is_moe else "autoep")
    trainer = parallelize(model, spec.cfg, moe, OptimConfig(warmup_frac=0.0), train)
    del model
    try:
        if compile_backend:
            compile_blocks(trainer.engine.module, spec.cfg.is_moe, compile_backend)
        shape = (prof.accumulation, prof.micro_batch, prof.seq_len + 1)
        x = torch.randint(3, spec.cfg.vocab_size, shape, generator=torch.Generator().manual_seed(0))
        batch = [(m[:, :-1], m[:, 1:]) for m in x.to(trainer.engine.device)]
        times, losses = [], []
        for _ in range(warmup + steps):
            acc.synchronize()
            t = time.perf_counter()
            out = train_step(trainer, batch)
            acc.synchronize()  # the step is over when its kernels are
            times.append(time.perf_counter() - t)
            losses.append(out.metrics[0])
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        losses = torch.stack(losses).tolist()
        return Measured(statistics.median(times[warmup:]), out.tokens, out.flops, times[0], losses, peak)
    finally:
        trainer.close()  # else the next row's memory would hold this engine too
        del trainer
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        if compile_backend:
            torch._dynamo.reset()


class Check:
    """Runs the sections in order, printing a line per measurement and rewriting --out after each."""

    def __init__(self, args: argparse.Namespace, prof: Profile, header: dict):
        self.args, self.prof = args, prof
        self.start = time.perf_counter()
        self.report = {"header": header, "grid": [], "goals": [], "precision": [], "compile": [], "notes": []}

    def attempt(
        self,
        spec: Spec,
        row: dict,
        label: str,
        precision="bf16",
        warmup=None,
        steps=None,
        compile_backend=None,
    ) -> Optional[Measured]:
        """Measure `spec` unless the budget is spent; a failure is recorded in `row` and the check goes on."""
        a, elapsed = self.args, time.perf_counter() - self.start
        m = None
        if a.budget_s and elapsed > a.budget_s:
            row.update(status="skipped", error=f"--budget-s {a.budget_s:g} spent")
        else:
            try:
                warmup = self.prof.warmup if warmup is None else warmup
                m = measure(
                    spec,
                    self.prof,
                    a.device,
                    a.zero_stage,
                    precision,
                    warmup,
                    steps or self.prof.steps,
                    compile_backend,
                )
            except Exception as e:  # out of memory, a missing kernel: a result of the check, not its end
                lines = str(e).strip().splitlines() or [""]
                row.update(status="error", error=f"{type(e).__name__}: {lines[0][:300]}")
        row.setdefault("status", "ok")
        said = f"{row['status']}: {row['error']}" if "error" in row else row["status"]
        if m:
            memory = "" if m.peak_mem_gib is None else f", peak {m.peak_mem_gib:.1f} GiB"
            said += f", {1000 * m.seconds:.1f} ms/step (first {m.first_step_s:.1f} s){memory}"
        print(f"[{time.perf_counter() - self.start:5.0f} s] {label}: {said}", flush=True)
        return m

    def run_grid(self, specs: list[Spec]) -> None:
        for spec in specs:
            c = count_params(spec.cfg)
            row = dict(
                name=spec.name,
                label=spec.label,
                kind=spec.kind,
                backend=spec.backend,
                twin=spec.twin,
                twin_of=spec.twin_of,
                **{k: getattr(spec.cfg, k) for k in ("d_model", "n_layers", "num_experts", "top_k", "ffn")},
                active=c.active,
                total=c.total,
                flops_per_token=flops_per_token(spec.cfg, self.prof.seq_len),
                ms_per_step=None,
                tokens_per_s=None,
                tflops=None,
                mfu=None,
                peak_mem_gib=None,
            )
            self.report["grid"].append(row)
            m = self.attempt(spec, row, spec.label)
            if m:
                peak = self.report["header"]["peak_tflops"]
                row.update(row_metrics(m.tokens, m.flops, m.seconds, peak), peak_mem_gib=m.peak_mem_gib)
            self.finish()

    def run_precision(self, specs: list[Spec]) -> None:
        for spec in specs:
            row, losses = {"model": spec.label}, {}
            self.report["precision"].append(row)
            for precision in ("fp32", "bf16"):
                m = self.attempt(
                    spec, row, f"{spec.label} {precision}", precision, 0, self.prof.precision_steps
                )
                if not m:
                    break
                losses[precision] = m.losses
            if len(losses) == 2:
                row.update(agreement(losses["bf16"], losses["fp32"]), losses=losses)
            self.finish()

    def run_compile(self, specs: list[Spec], backend: str) -> None:
        for spec in specs:
            row = {"model": spec.label, "compile_backend": backend}
            self.report["compile"].append(row)
            eager = next(r for r in self.report["grid"] if r["label"] == spec.label)
            if eager["status"] != "ok":
                row.update(status="skipped", error="its eager measurement in (a) did not run")
                continue
            warmup = max(self.prof.warmup, 2)  # the first step compiles the forward, the second may recompile
            m = self.attempt(spec, row, f"{spec.label} compiled", warmup=warmup, compile_backend=backend)
            if m:
                row.update(
                    compile_choice(eager["ms_per_step"] / 1000, m.seconds), first_step_s=m.first_step_s
                )
            self.finish()

    def finish(self) -> None:
        add_twin_ratios(self.report["grid"])
        self.report["goals"] = goal_verdicts(self.report["grid"])
        self.report["header"]["elapsed_s"] = time.perf_counter() - self.start
        write_outputs(self.report, self.args.out)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run(args: argparse.Namespace) -> dict:
    """The whole check, in a process that has a process group; returns the report."""
    import deepspeed
    import torch
    from machine import describe

    from ds_parrots.training.throughput import device_peak_tflops

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device cuda, but torch {torch.__version__} sees no GPU; on a CPU: --device cpu --tiny"
        )
    if args.device == "cpu" and not args.tiny:
        raise UsageError("no GPU here (torch.cuda.is_available() is false); on a CPU use --tiny")
    backend = args.compile_backend or ("inductor" if args.device == "cuda" else "aot_eager")
    prof = profile(args)
    name = torch.cuda.get_device_name() if args.device == "cuda" else describe()
    peak = device_peak_tflops(args.peak_tflops, "bf16") if args.device == "cuda" else args.peak_tflops
    source = "--peak-tflops" if args.peak_tflops else "datasheet bf16 dense"
    if not peak:
        peak, source = gemm_peak_tflops(torch.bfloat16), "measured: best bf16 torch.mm 2048^3 of this run"
    tokens = prof.micro_batch * prof.accumulation * prof.seq_len
    setup = [
        f"{'tiny' if args.tiny else 'full'} grid{' --quick' if args.quick else ''}: L={prof.n_layers}, seq "
        f"{prof.seq_len}, vocab {prof.vocab_size or 'of the presets (32000)'}, micro-batch {prof.micro_batch} x "
        f"{prof.accumulation} = {tokens:,} tokens/step; median of {prof.steps} steps after {prof.warmup}",
        f"one process, ZeRO-{args.zero_stage} (the native backend cannot run ZeRO-3), bf16 with fp32 master "
        "weights unless said, AdamW, one fixed batch of random tokens",
        f"MFU: counting.flops_per_token x tokens/s / {peak:.4g} TFLOP/s ({source})",
    ]
    header = dict(
        date=time.strftime("%Y-%m-%d %H:%M"),
        commit=_commit(),
        device=name,
        torch=torch.__version__,
        deepspeed=deepspeed.__version__,
        peak_tflops=peak,
        peak_source=source,
        profile=dataclasses.asdict(prof),
        zero_stage=args.zero_stage,
        setup=setup,
    )
    print(
        "\n".join(
            [f"# gpu_check: {name}, torch {torch.__version__}, DeepSpeed {deepspeed.__version__}", *setup]
        )
    )
    check = Check(args, prof, header)
    specs = grid(prof, args.backends)
    check.run_grid(specs)
    if "precision" not in args.skip:
        check.run_precision(precision_specs(specs))
    if "compile" not in args.skip:
        check.run_compile(compile_specs(specs), backend)
    check.report["notes"] += [
        f"(c): fp32 is torch's default fp32 matmul (no TF32); the loss of every step from the same initial "
        f"weights; tolerance {BF16_LOSS_RTOL:g} relative (BF16_LOSS_RTOL in bench/gpu_check_report.py says why)",
        f"(d): torch.compile backend {backend}; dense: each block compiled; MoE: attention and norms compiled, "
        "the MoE layer eager; the eager time is (a)'s",
    ]
    if args.device != "cuda":
        check.report["notes"].append(
            "CPU run: the goals are for H100 / H200; here the verdicts only exercise code"
        )
    check.finish()
    return check.report


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":  # before deepspeed is imported: it picks its accelerator once
        os.environ.update(DS_ACCELERATOR="cpu", CUDA_VISIBLE_DEVICES="")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    from deepspeed.utils import logger

    from ds_parrots.parallel.process_group import ensure_process_group, shutdown

    logger.setLevel(logging.ERROR)  # AutoEP warns at every engine it builds
    ensure_process_group()
    try:
        report = run(args)
    except UsageError as e:
        print(f"gpu_check: error: {e}", file=sys.stderr)
        return 2
    finally:
        shutdown()
    print("\n" + render_markdown(report), flush=True)
    if args.out:
        print(f"written: {args.out}/gpu_check.json, {args.out}/gpu_check.md")
    if exit_code(report):
        print("gpu_check: a measurement failed or was skipped (see the tables)", file=sys.stderr)
    return exit_code(report)


if __name__ == "__main__":
    from ds_parrots.parallel.process_group import exit_process

    exit_process(main())
