"""The training run every subcommand shares: checks before launch, the model and engine, the step loop
with logging, evaluation and checkpoints, and resume. A subcommand supplies its batches (an object
with `step_batches(step)` and `epochs_at(step)`, see data/task_batches.py and data/sampler.py) and
its evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable
import torch
import torch.distributed as dist
from ds_parrots.training import checkpoint
from ds_parrots.testing import faults
from ds_parrots.errors import RunAborted
from ds_parrots.config import RunConfig
from ds_parrots.data.task_batches import iterate_steps
from ds_parrots.parallel.ds_config import resolve_precision
from ds_parrots.training.step import train_step
from ds_parrots.parallel.health import is_collective_failure, lost_ranks, nonfinite_message, rank_loss_message
from ds_parrots.training.logger import RunLogger, coefficient_of_variation
from ds_parrots.training.throughput import device_peak_tflops, throughput


def _mean_over_ranks(values: list[float]) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def train_loop(trainer, batches, run: RunConfig, run_dir: Path, log: RunLogger,
               evaluate: Callable[[int], dict], client_state: Callable[[int], dict] = lambda step: {}
               ) -> tuple[int, list[dict], dict]:
    """Resume if asked, train to run.train.steps, evaluate and save at the end.

    `evaluate(step)` is collective and returns metrics (logged under eval/); `client_state(step)` adds
    entries to each checkpoint. Returns (final step, per-step history, final metrics). A lost rank, a
    non-finite step under --train.on-nonfinite stop, or a failed checkpoint write raises RunAborted.
    """
    progress = {"where": "setup"}
    try:
        return _train(trainer, batches, run, run_dir, log, evaluate, client_state, progress)
    except Exception as e:
        if not is_collective_failure(e):
            raise
        timeout = run.train.collective_timeout
        missing = lost_ranks(grace_s=max(10.0, min(timeout, 60.0)))
        message = rank_loss_message(e, progress["where"], timeout, missing, checkpoint.latest_path(run_dir))
        lost = [0] if missing is None else missing  # no store: rank 0, which hosts it, is gone
        survivors = [r for r in range(dist.get_world_size()) if r not in lost]
        raise RunAborted(message, report=bool(survivors) and dist.get_rank() == survivors[0]) from None


def _train(trainer, batches, run: RunConfig, run_dir: Path, log: RunLogger, evaluate, client_state,
           progress: dict) -> tuple[int, list[dict], dict]:
    engine, train = trainer.engine, run.train
    rank = dist.get_rank()
    start = 0
    if train.resume:
        state = checkpoint.load(engine, run_dir)
        start = int(state.get("step", 0))
        trainer.nonfinite_steps = list(state.get("nonfinite_steps", []))
        log.info(f"resumed from step {start} ({checkpoint.checkpoint_dir(run_dir)})")
    elif trainer.init_step:
        start = trainer.init_step
        engine.lr_scheduler.last_epoch = start - 1
        engine.lr_scheduler.step()  # the learning rate of step `start`, as if the run had never stopped
    if start and log.bar is not None:
        log.bar.n = start
        log.bar.refresh()

    def save(step: int) -> None:
        progress["where"] = f"the checkpoint of step {step}"
        state = {"step": step, "samples": step * train.global_batch, "nonfinite_steps": trainer.nonfinite_steps,
                 **client_state(step)}
        topology = {"world_size": dist.get_world_size(), "ep_size": run.moe.ep_size,
                    "zero_stage": train.zero_stage, "step": step}
        log.info(f"saved checkpoint {checkpoint.save(engine, run_dir, step, state, topology, train.keep_last)}")

    def run_eval(step: int) -> dict:
        progress["where"] = f"the evaluation at step {step}"
        engine.module.eval()
        metrics = evaluate(step)
        engine.module.train()
        log.scalars("eval", metrics, step)
        return metrics

    peak = device_peak_tflops(train.peak_tflops, resolve_precision(train))
    log.info(f"MFU against a peak of {peak:g} TFLOP/s per device" if peak else
             "peak FLOP/s of this device unknown: logging tokens/s and TFLOP/s per device, not MFU "
             "(set --train.peak-tflops)")
    history = []
    t_last, tokens_since, flops_since = time.perf_counter(), 0, 0.0
    step = start
    for step_batches in iterate_steps(batches, start, train.steps, train.num_workers):
        progress["where"] = f"step {step + 1}"
        faults.inject("hang", step + 1, rank)
        out = train_step(trainer, step_batches, poison=faults.active("nan", step + 1, rank))
        step += 1
        tokens_since += out["tokens"]
        flops_since += out["flops"]
        keys = [k for k in ("loss", "aux_loss", "z_loss") if k in out]
        nonfinite = bool(out["nonfinite_micro"]) or out["skipped"]
        means = _mean_over_ranks([out[k] for k in keys] + [float(nonfinite), tokens_since, flops_since])
        scalars = dict(zip(keys, means[:len(keys)]))
        bad_step = means[len(keys)] > 0
        if bad_step:
            _handle_nonfinite(trainer, out, step, run, run_dir, log)
        history.append({"step": step, **scalars, "lr": out["lr"], **({"nonfinite": True} if bad_step else {})})
        log.advance()
        if step % train.log_every == 0 or step == train.steps:
            elapsed = time.perf_counter() - t_last
            load = out["load"]
            if load:
                stacked = torch.stack([load[k] for k in sorted(load)]).double()
                dist.all_reduce(stacked)
                load = {k: stacked[i] / dist.get_world_size() for i, k in enumerate(sorted(load))}
                scalars["expert_load_cv"] = sum(coefficient_of_variation(v) for v in load.values()) / len(load)
            world = dist.get_world_size()
            scalars.update(lr=out["lr"], grad_norm=out["grad_norm"], epochs=batches.epochs_at(step - 1),
                           nonfinite_steps=len(trainer.nonfinite_steps),
                           **throughput(means[-2] * world, means[-1] * world, elapsed, world, peak))
            log.step(step, scalars, load)
            t_last, tokens_since, flops_since = time.perf_counter(), 0, 0.0
        faults.inject("sigkill", step, rank)
        if train.eval_every and step % train.eval_every == 0 and step != train.steps:
            run_eval(step)
        if train.save_every and step % train.save_every == 0 and step != train.steps:
            save(step)

    metrics = run_eval(step)
    if step > start or not train.resume:
        save(step)
    return step, history, metrics


def _handle_nonfinite(trainer, out: dict, step: int, run: RunConfig, run_dir: Path, log: RunLogger) -> None:
    """Apply --train.on-nonfinite to a step in which some rank saw a non-finite loss or gradient."""
    reports = [None] * dist.get_world_size()
    dist.all_gather_object(reports, {"rank": dist.get_rank(), "micro_batches": out["nonfinite_micro"],
                                     "skipped": out["skipped"]})
    last = checkpoint.latest_path(run_dir)
    if not all(r["skipped"] for r in reports):
        # Only a configuration that turns DeepSpeed's overflow check off gets here (bf16 with
        # check_grad_overflow false, or no gradient clipping under ZeRO): the weights are already damaged.
        raise RunAborted(f"step {step}: a non-finite loss or gradient reached the weights (this DeepSpeed "
                         "configuration does not skip such updates: keep bf16.check_grad_overflow true and "
                         f"--optim.grad-clip > 0); restart from {last or 'the beginning'} with --train.resume",
                         report=dist.get_rank() == 0)
    what = nonfinite_message(step, reports, run.train.global_batch, last)
    if run.train.on_nonfinite == "stop":
        raise RunAborted(f"{what}. To go on: --train.resume with --train.on-nonfinite skip (skips such steps and "
                         "counts them), or a lower --optim.lr", report=dist.get_rank() == 0)
    # DeepSpeed does not advance the schedule on a skipped update; we do, so that the learning rate stays a
    # function of the step (and a resumed run sees the same one).
    trainer.engine.lr_scheduler.step()
    out["lr"] = trainer.engine.get_lr()[0]
    trainer.nonfinite_steps.append(step)
    log.info(f"warning: {what}; skipped (--train.on-nonfinite skip), {len(trainer.nonfinite_steps)} so far")
