"""Run on 2 ranks: DeepSpeed's AutoEP layers (ZeRO-3, experts split over 2 ranks) compute the same
logits as our single-device reference model with the same weights. Writes the max error to the last argument."""

import json
import sys

import torch
import torch.distributed as dist

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig
from ds_parrots.models import build_model
from ds_parrots.parallel.initialize import parallelize
from ds_parrots.parallel.process_group import ensure_process_group, exit_process, shutdown


def main(out_path: str) -> None:
    ensure_process_group()
    cfg = ModelConfig(
        vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, num_experts=8, top_k=2, max_seq_len=16
    )
    moe = MoEConfig(backend="autoep", ep_size=2)
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.manual_seed(0)
    reference = build_model(cfg).eval()
    trainer = parallelize(
        model, cfg, moe, OptimConfig(), TrainConfig(global_batch=2, micro_batch=1, zero_stage=3)
    )
    swapped = [type(m.mlp).__name__ for m in trainer.engine.module.model.layers]
    # Each rank feeds its own tokens: AutoEP exchanges them between ranks, ZeRO-3 gathers weights.
    x = torch.randint(0, 40, (3, 12), generator=torch.Generator().manual_seed(dist.get_rank()))
    trainer.engine.module.eval()
    with torch.no_grad():
        ours = trainer.engine.module(x)
        ref = reference(x)
    err = (ours - ref).abs().max().item()
    errs = [None, None]
    dist.all_gather_object(errs, err)
    if dist.get_rank() == 0:
        with open(out_path, "w") as f:
            json.dump({"max_abs_err": errs, "scale": ref.abs().max().item(), "layers": swapped}, f)
    shutdown()


if __name__ == "__main__":
    main(sys.argv[-1])  # the deepspeed launcher puts --local_rank=N first
    exit_process(0)
