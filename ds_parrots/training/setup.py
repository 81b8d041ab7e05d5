"""Everything a run does before its first step: checks before launch, the process group, the model,
the engine, --train.init-from weights, and the layout recorded in results.json.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from ds_parrots.config import ModelConfig, RunConfig
from ds_parrots.errors import ConfigError
from ds_parrots.models import build_model
from ds_parrots.models.counting import describe
from ds_parrots.parallel.ds_config import (
    env_world_size,
    gradient_accumulation,
    micro_batch_size,
    resolve_precision,
    validate,
)
from ds_parrots.parallel.initialize import parallelize
from ds_parrots.parallel.optimizer_state import restore_from
from ds_parrots.parallel.process_group import ensure_process_group
from ds_parrots.testing import faults
from ds_parrots.training import checkpoint, run_lock
from ds_parrots.training.callbacks import Checkpointing, Evaluation, ExpertLoad, Logging, Throughput
from ds_parrots.training.logger import RunLogger
from ds_parrots.training.throughput import device_peak_tflops
from ds_parrots.training.trainer import Trainer


def check_before_launch(model_cfg: ModelConfig, run: RunConfig, run_dir: Path, config: dict) -> None:
    """Every check that needs no process group, so a bad command fails before any rank starts work."""
    validate(model_cfg, run.moe, run.train, env_world_size())
    if run.train.resume:
        checkpoint.require_resumable(run_dir)
        checkpoint.check_resume_topology(run_dir, env_world_size())
        checkpoint.check_resume_files(run_dir)
    elif run.train.init_from:
        check_init_from(run.train.init_from, model_cfg, run.train.steps)
    checkpoint.check_run_dir(run_dir, config, run.train.resume)
    checkpoint.check_writable(run_dir)
    lock_run_dir(run_dir, config, run.train.resume)


def lock_run_dir(run_dir: Path, config: dict, resume: bool) -> None:
    """One writer per run directory (training/run_lock.py), taken once every other check passed, so that a
    refused command creates nothing: rank 0 holds the lock for the whole run, every other rank checks it."""
    if int(os.environ.get("RANK", "0")) != 0:
        run_lock.check_free(run_dir)
        return
    created = run_lock.acquire(run_dir)
    try:
        # Again, now that no other run can write: one that held the lock until a moment ago may have saved.
        checkpoint.check_run_dir(run_dir, config, resume)
    except ConfigError:
        run_lock.release(run_dir, created)
        raise


def check_init_from(path: str, model_cfg: ModelConfig, steps: int) -> None:
    """The checkpoint exists, holds this model, and stops before --train.steps."""
    from ds_parrots.checkpoints.load import FORMAT, checkpoint_metadata, resolve
    from ds_parrots.parallel.checkpoint_format import check_checkpoint_files

    meta = checkpoint_metadata(Path(path))
    if meta.get("format") == FORMAT and not Path(path).suffix == ".safetensors":
        # A DeepSpeed checkpoint directory: refuse an unreadable or foreign file now, not after the run
        # directory is written and the process group started.
        check_checkpoint_files(resolve(Path(path))[0])
    ours = dataclasses.asdict(model_cfg)
    diff = sorted(k for k in ours.keys() | meta["model"].keys() if ours.get(k) != meta["model"].get(k))
    if diff:
        shown = ", ".join(f"{k}: {meta['model'].get(k)!r} there, {ours.get(k)!r} here" for k in diff[:4])
        raise ConfigError(
            f"--train.init-from {path} holds another model ({shown}); pass the model flags it "
            "was trained with"
        )
    if (meta.get("step") or 0) >= steps:
        raise ConfigError(
            f"--train.init-from {path} is at step {meta.get('step')}, not before --train.steps={steps}; "
            "raise --train.steps to train further"
        )


def load_init_weights(model: torch.nn.Module, path: str) -> int:
    """Copy a checkpoint's fp32 weights into the freshly built plain model (before parallelize, which then
    shards them or moves them into the MoE backend's layers); returns the step it was saved at."""
    from ds_parrots.checkpoints.load import consolidated_state

    state, meta = consolidated_state(Path(path))
    model.load_state_dict(state, strict=True)
    return int(meta.get("step") or 0)


def open_run(run_dir: Path, config: dict, run: RunConfig) -> tuple[int, int, RunLogger]:
    """Start the process group, the logger, and record the config (rank 0). Returns (rank, world, log)."""
    ensure_process_group(run.train.collective_timeout)
    rank = dist.get_rank()
    if rank == 0:
        checkpoint.write_config(run_dir, config)
    log = RunLogger(run_dir / "tensorboard", rank == 0, run.train.steps, 0, run.train.progress)
    return rank, dist.get_world_size(), log


def build_trainer(
    model_cfg: ModelConfig,
    run: RunConfig,
    run_dir: Path,
    log: RunLogger,
    world_size: int,
    batches,
    evaluate: Callable[[int], dict],
    client_state: Callable[[int], dict] = lambda step: {},
) -> Trainer:
    """The model (plain, then --train.init-from weights), its engine, and a Trainer with the run's callbacks.
    `evaluate(step)` is collective and returns metrics (logged under eval/); `client_state(step)` adds entries
    to each checkpoint."""
    torch.manual_seed(run.train.seed)  # identical initial weights on every rank
    model = build_model(model_cfg)
    init_step = None
    if run.train.init_from and not run.train.resume:
        init_step = load_init_weights(model, run.train.init_from)
    parallel = parallelize(model, model_cfg, run.moe, run.optim, run.train)
    if init_step is not None:
        optimizer = "optimizer state reset (--train.init-optimizer reset: AdamW moments restart from zero)"
        if run.train.init_optimizer == "restore":
            optimizer = restore_from(
                parallel.engine, Path(run.train.init_from), model_cfg, run.moe, dist.get_rank(), init_step
            )
        log.info(
            f"initialized from {run.train.init_from} (step {init_step}): weights loaded, {optimizer}, "
            "learning-rate schedule and data continue at that step"
        )
    if parallel.cpu_allocator is not None:
        log.info(f"CPU allocator (--train.cpu-allocator keep): glibc freed memory {parallel.cpu_allocator}")
    if world_size == 1 and run.train.zero_stage > 0:
        # Measured (bench/RESULTS.md, bench_step): synthetic-d512-e64 on one CPU rank at 2,048 tokens/step is
        # 2.42x its dense twin under ZeRO-2 and 1.20x under ZeRO-0: ZeRO's flat buffers, fp32 master copy and
        # per-parameter norm touch every (total) parameter each step and shard nothing on one rank.
        log.info(
            f"one rank: ZeRO-{run.train.zero_stage} shards nothing here but still copies every parameter and "
            "gradient through its flat buffers each step; --train.zero-stage 0 trains the same model faster "
            "(resume a run with the stage it was started with, or move it with --train.init-from)"
        )
    log.info(describe(model_cfg))
    log.info(
        f"parallel: world {world_size}, data-parallel {world_size}, expert-parallel "
        f"{run.moe.ep_size if model_cfg.is_moe else 1}, ZeRO-{run.train.zero_stage}, "
        f"{resolve_precision(run.train)}, micro batch {micro_batch_size(run.train, world_size)} x accumulation "
        f"{gradient_accumulation(run.train, world_size)} "
        f"= global {run.train.global_batch}"
        + (f", MoE backend {run.moe.backend}" if model_cfg.is_moe else "")
    )
    peak = device_peak_tflops(run.train.peak_tflops, resolve_precision(run.train))
    log.info(
        f"MFU against a peak of {peak:g} TFLOP/s per device"
        if peak
        else "peak FLOP/s of this device unknown: logging tokens/s and TFLOP/s per device, not MFU "
        "(set --train.peak-tflops)"
    )
    load = ExpertLoad()
    callbacks = [
        Throughput(peak),
        load,
        Logging(log, load),
        Evaluation(evaluate),
        Checkpointing(client_state),
        *faults.callbacks_from_env(),
    ]
    return Trainer(parallel, batches, run, run_dir, log, callbacks, init_step)


def local_experts(module: torch.nn.Module) -> Optional[int]:
    """Experts per MoE layer held by this rank (DeepSpeed's layers record it), None for dense models."""
    for m in module.modules():
        n = getattr(m, "num_local_experts", None)
        if isinstance(n, int):
            return n
    return None


def experts_per_rank(trainer: Trainer) -> list:
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, local_experts(trainer.engine.module))
    return out


def layout(run: RunConfig, model_cfg: ModelConfig, experts: list) -> dict:
    return {
        "world_size": dist.get_world_size(),
        "ep_size": run.moe.ep_size if model_cfg.is_moe else 1,
        "zero_stage": run.train.zero_stage,
        "local_experts_per_rank": experts,
    }


def run_config_dict(run: RunConfig, model_cfg: ModelConfig, **extra) -> dict:
    return {**extra, **dataclasses.asdict(dataclasses.replace(run, model=model_cfg))}
