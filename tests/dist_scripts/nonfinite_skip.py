"""Run on 2 ranks, without ZeRO, experts split over the ranks (AutoEP, ep 2): an inf in an expert gradient of
rank 1 only, a gradient no reduction carries to rank 0, must skip the update on both ranks. Writes each rank's
skipped-step count, whether its reported gradient norm was finite, and whether its weights changed in the
skipped and in the following step to the last argument."""

import json
import sys

import torch
import torch.distributed as dist

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig
from ds_parrots.models import build_model
from ds_parrots.parallel.initialize import parallelize
from ds_parrots.parallel.process_group import ensure_process_group, exit_process, shutdown
from ds_parrots.training.step import lm_loss, train_step


def batch(step: int):
    x = torch.randint(0, 40, (2, 9), generator=torch.Generator().manual_seed(10 * step + dist.get_rank()))
    return x[:, :-1], x[:, 1:]


def main(out_path: str) -> None:
    from deepspeed.moe.utils import is_moe_param

    ensure_process_group()
    cfg = ModelConfig(
        vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, num_experts=4, top_k=2, max_seq_len=16
    )
    torch.manual_seed(0)
    model = parallelize(
        build_model(cfg),
        cfg,
        MoEConfig(backend="autoep", ep_size=2),
        OptimConfig(),
        TrainConfig(steps=4, global_batch=4, micro_batch=2, zero_stage=0, precision="fp32"),
    )
    engine = model.engine
    train_step(model, [batch(0)])

    def weights():
        return [p.detach().clone() for p in engine.module.parameters()]

    before = weights()
    input_ids, targets = batch(1)
    engine.backward(lm_loss(engine(input_ids), targets))
    model.capture.pop()
    expert = next(p for p in engine.module.parameters() if is_moe_param(p) and p.grad is not None)
    if dist.get_rank() == 1:
        expert.grad.view(-1)[0] = float("inf")
    engine.step()
    norm_finite = bool(torch.isfinite(engine.get_global_grad_norm()))
    skipped = weights()
    train_step(model, [batch(2)])
    after = weights()
    mine = {
        "rank": dist.get_rank(),
        "skipped_steps": engine.skipped_steps,
        "norm_finite": norm_finite,
        "changed_in_skipped_step": any(not torch.equal(a, b) for a, b in zip(before, skipped)),
        "changed_after": any(not torch.equal(a, b) for a, b in zip(skipped, after)),
    }
    reports = [None, None]
    dist.all_gather_object(reports, mine)
    if dist.get_rank() == 0:
        with open(out_path, "w") as f:
            json.dump(reports, f)
    shutdown()


if __name__ == "__main__":
    main(sys.argv[-1])  # the deepspeed launcher puts --local_rank=N first
    exit_process(0)
