"""Run on 2 ranks: for each case (backend x ZeRO stage x expert-parallel size x precision), train 2 steps,
save a checkpoint the way training does, and record the logits the sharded engine computes on a fixed batch
(rank 0 writes them). The tests then consolidate each checkpoint on 1 process and compare.

Usage: save_checkpoints.py OUT_DIR CASE [CASE ...], CASE = <dense|autoep|native>-z<stage>-ep<n>[-bf16]
"""

import dataclasses
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig
from ds_parrots.models import build_model
from ds_parrots.parallel.initialize import parallelize
from ds_parrots.parallel.process_group import ensure_process_group, exit_process, shutdown
from ds_parrots.training import checkpoint
from ds_parrots.training.step import train_step

VOCAB, SEQ = 48, 12


def parse(case: str):
    parts = case.split("-")
    backend, stage, ep = parts[0], int(parts[1][1:]), int(parts[2][2:])
    precision = "bf16" if parts[-1] == "bf16" else "fp32"
    moe_layers = backend != "dense"
    model = ModelConfig(
        vocab_size=VOCAB,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        num_experts=8 if moe_layers else 1,
        top_k=2,
        max_seq_len=SEQ,
    )
    moe = MoEConfig(backend="native" if backend == "native" else "autoep", ep_size=ep)
    train = TrainConfig(global_batch=4, micro_batch=2, zero_stage=stage, precision=precision, steps=2)
    return model, moe, train


def run_case(case: str, out_dir: Path) -> None:
    model_cfg, moe, train = parse(case)
    optim = OptimConfig(lr=1e-2, warmup_frac=0.0)
    torch.manual_seed(0)
    trainer = parallelize(build_model(model_cfg), model_cfg, moe, optim, train)
    gen = torch.Generator().manual_seed(100 + dist.get_rank())
    for _ in range(2):  # each rank its own data, so the optimizer moves every shard differently
        ids = torch.randint(0, VOCAB, (2, SEQ), generator=gen)
        train_step(trainer, [(ids, ids)])
    run_dir = out_dir / case
    if dist.get_rank() == 0:
        checkpoint.write_config(
            run_dir,
            {
                "model": dataclasses.asdict(model_cfg),
                "moe": dataclasses.asdict(moe),
                "optim": dataclasses.asdict(optim),
                "train": dataclasses.asdict(train),
                "task_name": None,
            },
        )
    dist.barrier()
    checkpoint.save(trainer.engine, run_dir, 2, {"step": 2})
    x = torch.randint(0, VOCAB, (3, SEQ), generator=torch.Generator().manual_seed(7))  # same on every rank
    trainer.engine.module.eval()
    with torch.no_grad():
        logits = trainer.engine.module(x.to(trainer.engine.device)).float().cpu()
    if dist.get_rank() == 0:
        torch.save({"input_ids": x, "logits": logits}, run_dir / "reference_logits.pt")
    dist.barrier()


def main(out_dir: str, cases: list[str]) -> None:
    ensure_process_group()
    for case in cases:
        run_case(case, Path(out_dir))
    shutdown()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--local_rank")]
    main(args[0], args[1:])
    exit_process(0)
