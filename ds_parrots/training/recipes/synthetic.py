"""Train a synthetic task end to end: build the task and model, train with DeepSpeed, score by
greedy generation, checkpoint, and write results.json. Every rank runs `train_synthetic`."""

from __future__ import annotations

import dataclasses

from ds_parrots.config import ModelConfig, MoEConfig, RunConfig
from ds_parrots.config.model import fit_sequence_length
from ds_parrots.data.task_batches import TaskBatches
from ds_parrots.errors import ConfigError
from ds_parrots.parallel.ds_config import micro_batch_size
from ds_parrots.parallel.process_group import rank0_done
from ds_parrots.tasks import build_task
from ds_parrots.tasks.evaluate import evaluate_task
from ds_parrots.training.callbacks import Evaluation
from ds_parrots.training.results import run_results, write_results
from ds_parrots.training.setup import (
    build_trainer,
    check_before_launch,
    experts_per_rank,
    open_run,
    run_config_dict,
)


def model_tag(model: ModelConfig, moe: MoEConfig) -> str:
    ff = f"e{model.num_experts}k{model.top_k}-{moe.backend}" if model.is_moe else "dense"
    return f"d{model.d_model}-L{model.n_layers}-{ff}"


def default_run_name(task_name: str, task_cfg, model: ModelConfig, moe: MoEConfig, seed: int) -> str:
    size = getattr(task_cfg, "book_size", None) or getattr(task_cfg, "num_train", None)
    size_tag = f"-n{size}" if size else ""
    return f"{task_name}{size_tag}-{model_tag(model, moe)}-s{seed}"


def task_model(model: ModelConfig, task, max_seq_len_given: bool = False) -> ModelConfig:
    """The model as trained on `task`: its vocabulary comes from the task's tokenizer, its sequence length from
    the task's longest example unless --model.max-seq-len was given."""
    model = dataclasses.replace(model, vocab_size=task.tokenizer.vocab_size)
    return fit_sequence_length(model, task.max_seq_len, max_seq_len_given, "the task's longest example")


def train_synthetic(task_name: str, task_cfg, run: RunConfig) -> dict:
    """Train and score; returns the results dict (the same on every rank)."""
    try:
        task = build_task(task_name, task_cfg)
    except ValueError as e:
        raise ConfigError(f"{task_name}: {e}") from None
    model_cfg = task_model(run.model, task, getattr(run, "max_seq_len_given", False))
    train = run.train
    run_dir = train.run_dir(default_run_name(task_name, task_cfg, model_cfg, run.moe, train.seed))
    config = run_config_dict(run, model_cfg, task_name=task_name)
    check_before_launch(model_cfg, run, run_dir, config)

    rank, world_size, log = open_run(run_dir, config, run)
    try:
        if train.cache_dir:
            from ds_parrots.tasks.cache import cached_task

            if rank == 0:  # one builder; the others wait, then open the finished files
                task = cached_task(task, train.cache_dir, progress=train.progress)
            rank0_done("task cache")  # a large cache takes longer than --train.collective-timeout
            if rank != 0:
                task = cached_task(task, train.cache_dir, progress=False)
        batches = TaskBatches(
            task, train.seed, train.global_batch, micro_batch_size(train, world_size), world_size, rank
        )

        def evaluate(step: int) -> dict:
            metrics = evaluate_task(
                trainer.engine.module,
                task,
                trainer.engine.device,
                train.eval_batch,
                train.max_eval,
                rank,
                world_size,
            )
            log.info(f"step {step}: {task.summary(metrics)}")
            return metrics

        trainer = build_trainer(model_cfg, run, run_dir, log, world_size, batches, evaluate)
        experts = experts_per_rank(trainer)
        log.info(
            f"task: {task_name}, {task.train_size():,} training examples, {len(task.eval_examples()):,} eval "
            f"queries; run dir {run_dir}"
        )
        step = trainer.fit()
        metrics = trainer.callback_of(Evaluation).metrics
        results = run_results(
            trainer,
            run,
            model_cfg,
            experts,
            task=task_name,
            task_config=dataclasses.asdict(task_cfg),
            step=step,
            metrics=metrics,
            summary=task.summary(metrics),
        )
        write_results(trainer, results, model_cfg)
        return results
    finally:
        log.close()
