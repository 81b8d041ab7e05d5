"""Train a synthetic task end to end: build the task and model, train with DeepSpeed, score by
greedy generation, checkpoint, and write results.json. Every rank runs `train_synthetic`."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ds_parrots import checkpoint
from ds_parrots.config import ConfigError, ModelConfig, MoEConfig, RunConfig
from ds_parrots.distributed import ensure_process_group
from ds_parrots.data.task_batches import TaskBatches, iterate_steps
from ds_parrots.engine import env_world_size, initialize, resolve_precision, train_step, validate
from ds_parrots.generate import evaluate_task
from ds_parrots.logs import RunLogger, coefficient_of_variation
from ds_parrots.model import build_model
from ds_parrots.model.counting import count_params, describe
from ds_parrots.tasks import build_task


def model_tag(model: ModelConfig, moe: MoEConfig) -> str:
    ff = f"e{model.num_experts}k{model.top_k}-{moe.backend}" if model.is_moe else "dense"
    return f"d{model.d_model}-L{model.n_layers}-{ff}"


def default_run_name(task_name: str, task_cfg, model: ModelConfig, moe: MoEConfig, seed: int) -> str:
    size = getattr(task_cfg, "book_size", None) or getattr(task_cfg, "num_train", None)
    size_tag = f"-n{size}" if size else ""
    return f"{task_name}{size_tag}-{model_tag(model, moe)}-s{seed}"


def _local_experts(module: torch.nn.Module):
    """Experts per MoE layer held by this rank (DeepSpeed's layers record it), None for dense models."""
    for m in module.modules():
        n = getattr(m, "num_local_experts", None)
        if isinstance(n, int):
            return n
    return None


def _mean_over_ranks(values: list[float]) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def train_synthetic(task_name: str, task_cfg, run: RunConfig) -> dict:
    """Train and score; returns the results dict (the same on every rank)."""
    try:
        task = build_task(task_name, task_cfg)
    except ValueError as e:
        raise ConfigError(f"{task_name}: {e}") from None
    model_cfg = dataclasses.replace(run.model, vocab_size=task.tokenizer.vocab_size, max_seq_len=task.max_seq_len)
    moe, train = run.moe, run.train
    world_size = env_world_size()
    validate(model_cfg, moe, train, world_size)
    run_dir = Path(train.out_dir) / (train.run_name or default_run_name(task_name, task_cfg, model_cfg, moe,
                                                                          train.seed))
    if train.resume:
        checkpoint.require_resumable(run_dir)
    config = {"task_name": task_name, "task": dataclasses.asdict(task_cfg),
              **dataclasses.asdict(dataclasses.replace(run, model=model_cfg))}
    checkpoint.check_run_dir(run_dir, config, train.resume)

    ensure_process_group()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    log = RunLogger(run_dir / "tensorboard", rank == 0, train.steps, 0, train.progress)
    try:
        return _train(task_name, task_cfg, task, model_cfg, run, run_dir, rank, world_size, log, config)
    finally:
        log.close()


def _train(task_name, task_cfg, task, model_cfg, run, run_dir, rank, world_size, log, config) -> dict:
    moe, optim, train = run.moe, run.optim, run.train
    counts = count_params(model_cfg)
    if rank == 0:
        checkpoint.write_config(run_dir, config)
    if train.cache_dir:
        from ds_parrots.tasks.cache import cached_task

        if rank == 0:  # one builder; the others wait, then open the finished files
            task = cached_task(task, train.cache_dir, progress=train.progress)
        dist.barrier()
        if rank != 0:
            task = cached_task(task, train.cache_dir, progress=False)
    torch.manual_seed(train.seed)  # identical initial weights on every rank
    model = build_model(model_cfg, moe)
    trainer = initialize(model, model_cfg, moe, optim, train)
    engine = trainer.engine
    batches = TaskBatches(task, train.seed, train.global_batch, train.micro_batch, world_size, rank)
    local_experts = [None] * world_size
    dist.all_gather_object(local_experts, _local_experts(engine.module))
    log.info(describe(model_cfg))
    log.info(f"parallel: world {world_size}, data-parallel {world_size}, expert-parallel "
             f"{moe.ep_size if model_cfg.is_moe else 1}, ZeRO-{train.zero_stage}, {resolve_precision(train)}, "
             f"micro batch {train.micro_batch} x accumulation {batches.accumulation} = global {train.global_batch}"
             + (f", MoE backend {moe.backend}" if model_cfg.is_moe else ""))
    log.info(f"task: {task_name}, {task.train_size():,} training examples, {len(task.eval_examples()):,} eval "
             f"queries; run dir {run_dir}")

    start = 0
    if train.resume:
        state = checkpoint.load(engine, run_dir)
        start = int(state.get("step", 0))
        log.info(f"resumed from step {start} ({checkpoint.checkpoint_dir(run_dir)})")
        if log.bar is not None:
            log.bar.n = start
            log.bar.refresh()

    def evaluate(step: int) -> dict:
        engine.module.eval()
        metrics = evaluate_task(engine.module, task, engine.device, train.eval_batch, train.max_eval, rank,
                                world_size)
        engine.module.train()
        log.scalars("eval", metrics, step)
        log.info(f"step {step}: {task.summary(metrics)}")
        return metrics

    def save(step: int) -> None:
        tag = checkpoint.save(engine, run_dir, step, {"step": step, "samples": step * train.global_batch})
        log.info(f"saved checkpoint {tag}")

    history = []
    t_last, tokens_since = time.perf_counter(), 0
    step = start
    for step_batches in iterate_steps(batches, start, train.steps, train.num_workers):
        out = train_step(trainer, step_batches)
        step += 1
        tokens_since += out["tokens"]
        keys = [k for k in ("loss", "aux_loss", "z_loss") if k in out]
        means = _mean_over_ranks([out[k] for k in keys] + [tokens_since])
        scalars = dict(zip(keys, means[:-1]))
        history.append({"step": step, **scalars})
        log.advance()
        if step % train.log_every == 0 or step == train.steps:
            elapsed = time.perf_counter() - t_last
            load = out["load"]
            if load:
                stacked = torch.stack([load[k] for k in sorted(load)]).double()
                dist.all_reduce(stacked)
                load = {k: stacked[i] / world_size for i, k in enumerate(sorted(load))}
                scalars["expert_load_cv"] = sum(coefficient_of_variation(v) for v in load.values()) / len(load)
            scalars.update(lr=out["lr"], grad_norm=out["grad_norm"],
                           tokens_per_s=means[-1] * world_size / max(elapsed, 1e-9),
                           epochs=batches.epochs_at(step - 1))
            log.step(step, scalars, load)
            t_last, tokens_since = time.perf_counter(), 0
        if train.eval_every and step % train.eval_every == 0 and step != train.steps:
            evaluate(step)
        if train.save_every and step % train.save_every == 0 and step != train.steps:
            save(step)

    metrics = evaluate(step)
    if step > start or not train.resume:
        save(step)
    results = {"task": task_name, "task_config": dataclasses.asdict(task_cfg), "step": step,
               "metrics": metrics, "summary": task.summary(metrics), "params": counts.as_dict(),
               "model": dataclasses.asdict(model_cfg), "moe_backend": moe.backend if model_cfg.is_moe else None,
               "run_dir": str(run_dir), "loss_history": history,
               "layout": {"world_size": world_size, "ep_size": moe.ep_size if model_cfg.is_moe else 1,
                          "zero_stage": train.zero_stage, "local_experts_per_rank": local_experts}}
    if rank == 0:
        (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        log.info(task.summary(metrics))
        log.info(f"params: total {counts.total:,}, active {counts.active:,}; results in {run_dir / 'results.json'}")
    return results
