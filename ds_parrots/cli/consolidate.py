"""`ds-parrots consolidate`: any checkpoint -> one fp32 safetensors file plus a JSON sidecar, and the
loaders that evaluation, export and --train.init-from share.

    ds-parrots consolidate runs/my-run --out my-run.safetensors      (newest checkpoint of the run)
    ds-parrots consolidate runs/my-run/checkpoints/step00001000 --out step1000.safetensors

The sidecar (`my-run.json` beside `my-run.safetensors`) holds the model configuration, the MoE backend it
trained with, the task or the tokenizer path, and the step, so the file is all an evaluation needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from ds_parrots.checkpoints.consolidate import save_consolidated
from ds_parrots.checkpoints.load import consolidated_state, model_config, sidecar_path
from ds_parrots.errors import ConfigError


@dataclass
class ConsolidateArgs:
    """Turn a checkpoint of any ZeRO stage, MoE backend, world size and expert-parallel size into one
    full-precision (fp32) safetensors file plus a JSON sidecar (model config, task or tokenizer, step).
    Reads the fp32 master weights from the optimizer partitions (exact even for bf16 runs); runs on one
    CPU process, no GPU or process group needed."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A run directory (its newest checkpoint), its checkpoints/ directory, or one checkpoint step directory
    (runs/<run>/checkpoints/step00001000)."""
    out: Path
    """Output file, ending in .safetensors; the sidecar is written beside it with the suffix .json."""
    overwrite: bool = False
    """Replace an existing output file and sidecar."""


def main(argv: list[str]) -> int:
    import time

    args = tyro.cli(
        ConsolidateArgs, args=argv, prog="ds-parrots consolidate", description=ConsolidateArgs.__doc__
    )
    start = time.perf_counter()
    if not args.overwrite and Path(args.out).exists():
        raise ConfigError(f"{args.out} exists; pass --overwrite to replace it")
    state, meta = consolidated_state(args.checkpoint)
    from ds_parrots.models.counting import count_params

    meta["params"] = count_params(model_config(meta, args.checkpoint)).as_dict()
    save_consolidated(state, meta, args.out, args.overwrite)
    numel = sum(v.numel() for v in state.values())
    print(
        f"consolidated {meta['source']} (step {meta['step']}, ZeRO-{meta['zero_stage']}, "
        f"{meta['moe_backend'] or 'dense'}{', ep ' + str(meta['ep_size']) if meta['moe_backend'] else ''}) "
        f"-> {args.out} ({len(state)} tensors, {numel:,} fp32 values) and {sidecar_path(args.out)} in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0
