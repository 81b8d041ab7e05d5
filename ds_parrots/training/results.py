"""results.json: what every recipe reports about a finished run, written once by rank 0."""

from __future__ import annotations

import dataclasses
import json

from ds_parrots.config import ModelConfig, RunConfig
from ds_parrots.fileio import write_text_atomic
from ds_parrots.models.counting import count_params
from ds_parrots.training.setup import layout


def run_results(trainer, run: RunConfig, model_cfg: ModelConfig, experts: list, **task_fields) -> dict:
    """The recipe's own fields (task, metrics, ...) first, then those every run records."""
    return {
        **task_fields,
        "params": count_params(model_cfg).as_dict(),
        "model": dataclasses.asdict(model_cfg),
        "moe_backend": run.moe.backend if model_cfg.is_moe else None,
        "run_dir": str(trainer.run_dir),
        "loss_history": trainer.history,
        "layout": layout(run, model_cfg, experts),
        "nonfinite_steps": trainer.nonfinite_steps,
    }


def write_results(trainer, results: dict, model_cfg: ModelConfig) -> None:
    """Rank 0 writes run_dir/results.json (atomically) and says where."""
    import torch.distributed as dist

    if dist.get_rank() != 0:
        return
    path = trainer.run_dir / "results.json"
    write_text_atomic(path, json.dumps(results, indent=2) + "\n")
    counts = count_params(model_cfg)
    trainer.log.info(f"params: total {counts.total:,}, active {counts.active:,}; results in {path}")
