"""Train a few steps through our engine twice from the same weights and batches: DeepSpeed's own layers,
then ours swapped into them (autoep: the plain-sort token path with grouped-GEMM experts, against DeepSpeed's
layer running its per-expert loop as the reference; native: the trimmed experts).
Writes, for each, the losses, the full gradients of the expert and router weights at the first step
(safe_get_full_grad: any ZeRO stage) and the class of the experts modules that ran.
Arguments: --backend autoep|native --zero N --ep N OUT."""

import argparse
import json
import tempfile
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
from deepspeed.utils import safe_get_full_grad

from ds_parrots.config import ModelConfig, MoEConfig, OptimConfig, TrainConfig, shipped_file
from ds_parrots.models import build_model
from ds_parrots.parallel.initialize import parallelize
from ds_parrots.parallel.process_group import ensure_process_group, exit_process, shutdown
from ds_parrots.training.step import lm_loss

OURS = {"autoep": "grouped", "native": "trimmed"}


def experts_class(layer) -> str:
    mlp = layer.mlp
    if hasattr(mlp, "moe"):
        return type(mlp.moe.deepspeed_moe.experts).__name__
    return f"{type(mlp).__name__}/{type(mlp.experts).__name__}"


def reference_template(zero: int, path: Path) -> str:
    """The shipped ZeRO template with DeepSpeed's per-expert loop (use_grouped_mm off): a reference that
    shares no kernel with the grouped GEMM."""
    cfg = json.loads(shipped_file(f"zero{zero}.json").read_text())
    cfg["expert_parallel"] = {"use_grouped_mm": False}
    path.write_text(json.dumps(cfg))
    return str(path)


def run(backend: str, impl: str, zero: int, ep: int, template: Optional[str]) -> dict:
    cfg = ModelConfig(
        vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, num_experts=8, top_k=2, max_seq_len=16
    )
    moe = MoEConfig(backend=backend, ep_size=ep, **{f"{backend}_experts": impl})
    torch.manual_seed(0)
    model = build_model(cfg)
    world = dist.get_world_size()
    trainer = parallelize(
        model,
        cfg,
        moe,
        OptimConfig(lr=1e-2, warmup_frac=0.0),
        TrainConfig(
            steps=3,
            global_batch=2 * world,
            micro_batch=2,
            zero_stage=zero,
            precision="fp32",
            ds_config=template,
        ),
    )
    engine = trainer.engine
    classes = sorted({experts_class(m) for m in engine.module.model.layers})
    # Each rank its own tokens, the same for both runs; 16 tokens over 8 experts leaves some experts empty.
    gen = torch.Generator().manual_seed(100 + dist.get_rank())
    losses, grads = [], {}
    for step in range(3):
        x = torch.randint(0, 40, (2, 9), generator=gen)
        logits = engine(x[:, :-1])
        loss = lm_loss(logits, x[:, 1:])
        stats = trainer.capture.pop()
        engine.backward(loss + 0.01 * stats.aux_loss + 0.001 * stats.z_loss)
        if step == 0:
            for name, p in engine.module.named_parameters():
                if ".mlp." in name:
                    grads[name] = safe_get_full_grad(p).flatten().tolist()
        engine.step()
        losses.append(loss.item())
    return {"losses": losses, "grads": grads, "classes": classes}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=0)
    parser.add_argument("--backend", choices=sorted(OURS), required=True)
    parser.add_argument("--zero", type=int, required=True)
    parser.add_argument("--ep", type=int, required=True)
    parser.add_argument("out")
    args = parser.parse_args()
    ensure_process_group()
    with tempfile.TemporaryDirectory() as tmp:
        template = reference_template(args.zero, Path(tmp) / "ref.json") if args.backend == "autoep" else None
        result = {"deepspeed": run(args.backend, "deepspeed", args.zero, args.ep, template)}
    result[OURS[args.backend]] = run(args.backend, OURS[args.backend], args.zero, args.ep, None)
    per_rank = [None] * dist.get_world_size()
    dist.all_gather_object(per_rank, result)
    if dist.get_rank() == 0:
        with open(args.out, "w") as f:
            json.dump(per_rank, f)
    shutdown()


if __name__ == "__main__":
    main()
    exit_process(0)
