"""Run on 2 ranks: training through our DeepSpeed engine with --train.activation-checkpointing gives the
same losses, aux losses and gradient norms as without it, for dense ZeRO-3 and MoE ZeRO-3 with AutoEP
expert parallelism (ep=2). Writes both runs' per-step scalars to the last argument."""

import json
import sys

import torch
import torch.distributed as dist

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig
from ds_parrots.models import build_model
from ds_parrots.parallel.initialize import parallelize
from ds_parrots.parallel.process_group import ensure_process_group, exit_process, shutdown
from ds_parrots.training.step import train_step

CASES = {
    "dense-zero3": (
        ModelConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=16),
        MoEConfig(),
    ),
    "moe-zero3-ep2": (
        ModelConfig(
            vocab_size=40,
            d_model=32,
            n_layers=2,
            n_heads=4,
            n_kv_heads=2,
            num_experts=8,
            top_k=2,
            max_seq_len=16,
        ),
        MoEConfig(backend="autoep", ep_size=2),
    ),
}


def train(cfg: ModelConfig, moe: MoEConfig, checkpointing: bool, steps: int = 3) -> list[dict]:
    torch.manual_seed(0)
    train_cfg = TrainConfig(
        steps=steps,
        global_batch=4,
        micro_batch=1,
        zero_stage=3,
        precision="fp32",
        activation_checkpointing=checkpointing,
    )
    trainer = parallelize(build_model(cfg), cfg, moe, OptimConfig(lr=1e-2, warmup_frac=0.0), train_cfg)
    # Count block forwards: with checkpointing each block runs again in backward. A pre-hook, since the
    # recomputation stops early (without its forward hooks) once it has what backward needs.
    forwards = [0]
    trainer.engine.module.model.layers[0].register_forward_pre_hook(
        lambda *_: forwards.__setitem__(0, forwards[0] + 1)
    )
    gen = torch.Generator().manual_seed(dist.get_rank())
    out = []
    for _ in range(steps):
        # 2 micro-batches per rank: gradient accumulation runs the recomputation twice per step.
        batches = []
        for _ in range(2):
            x = torch.randint(0, cfg.vocab_size, (1, 13), generator=gen)
            batches.append((x[:, :-1], x[:, 1:]))
        s = train_step(trainer, batches).host()
        out.append({k: s[k] for k in ("loss", "aux_loss", "z_loss", "grad_norm") if k in s})
    return {"steps": out, "layer0_forwards": forwards[0]}


def main(out_path: str) -> None:
    ensure_process_group()
    res = {
        name: {"plain": train(cfg, moe, False), "checkpointed": train(cfg, moe, True)}
        for name, (cfg, moe) in CASES.items()
    }
    gathered = [None, None]
    dist.all_gather_object(gathered, res)
    if dist.get_rank() == 0:
        with open(out_path, "w") as f:
            json.dump(gathered, f)
    shutdown()


if __name__ == "__main__":
    main(sys.argv[-1])  # the deepspeed launcher puts --local_rank=N first
    exit_process(0)
