"""`ds-parrots export-hf`: any checkpoint -> a Hugging Face Mistral / Mixtral folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional

import tyro

from ds_parrots.checkpoints.hf_export import DTYPES, _check_out_dir, export_hf, hf_tensors
from ds_parrots.config import ModelConfig, MoEConfig
from ds_parrots.errors import ConfigError


@dataclass
class ExportArgs:
    """Write a Hugging Face model folder from a checkpoint: MistralForCausalLM for dense models,
    MixtralForCausalLM for MoE ones, with config.json, safetensors weights, generation_config.json and the
    tokenizer (tokenizer.json, plus tokenizer.model for sentencepiece). Load it with
    transformers.AutoModelForCausalLM.from_pretrained(DIR) or `lm_eval --model hf --model_args pretrained=DIR`."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A run directory (its newest checkpoint), one checkpoint step directory, or a consolidated .safetensors
    file from `ds-parrots consolidate` (with its .json sidecar beside it)."""
    out: Path
    """Output directory; created, and refused if it exists and is not empty unless --overwrite."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Precision of the exported weights (checkpoints hold fp32 master weights)."""
    overwrite: bool = False
    """Replace a non-empty output directory (the old one stays until the new one is complete)."""
    tokenizer: Optional[Path] = None
    """Sentencepiece .model to export, instead of the one the run's config names (for when it moved).
    Synthetic-task runs export their symbol tokenizer and ignore this."""


def task_tokenizer(name: str, task_config):
    """The SymbolTokenizer of synthetic task `name` built from its saved config (a dict or the dataclass)."""
    from ds_parrots.tasks import TASKS, build_task

    config_type = TASKS[name][0]
    if isinstance(task_config, dict):
        try:
            task_config = config_type(**task_config)
        except TypeError as e:
            raise ConfigError(
                f"the run's {name} task configuration is not one this ds_parrots can build ({e}); "
                "its tokenizer cannot be rebuilt"
            ) from None
    return build_task(name, task_config).tokenizer


def main(argv: list[str]) -> int:
    import inspect
    import time

    from ds_parrots.checkpoints.load import consolidated_state
    from ds_parrots.tasks import TASKS

    args = tyro.cli(
        ExportArgs, args=argv, prog="ds-parrots export-hf", description=inspect.cleandoc(ExportArgs.__doc__)
    )
    start = time.perf_counter()
    _check_out_dir(args.out, args.overwrite)  # before the (slow) checkpoint read
    state, meta = consolidated_state(args.checkpoint)
    cfg = ModelConfig(**meta["model"])
    task = meta.get("task_name")
    if task in TASKS:
        tokenizer = task_tokenizer(task, meta.get("task_config") or {})
    else:
        tokenizer = args.tokenizer or meta.get("tokenizer")
        if tokenizer is not None and not Path(tokenizer).is_file():
            raise ConfigError(
                f"the run's tokenizer {tokenizer} does not exist; pass --tokenizer PATH to the "
                "sentencepiece .model it was trained with"
            )
    moe = (meta.get("run_config") or {}).get("moe") or {}
    export_hf(
        state,
        cfg,
        args.out,
        tokenizer,
        DTYPES[args.dtype],
        args.overwrite,
        router_aux_loss_coef=moe.get("aux_loss_coef", MoEConfig.aux_loss_coef),
    )
    arch = "MixtralForCausalLM" if cfg.is_moe else "MistralForCausalLM"
    numel = sum(t.numel() for _, t in hf_tensors(state, cfg))
    what = (
        f"{task} symbols"
        if task in TASKS
        else (f"sentencepiece {Path(tokenizer).name}" if tokenizer else None)
    )
    print(
        f"exported {args.checkpoint} -> {args.out} ({arch}, {numel:,} {args.dtype} parameters, tokenizer: "
        f"{what or 'none (the run names none; pass --tokenizer)'}) in {time.perf_counter() - start:.1f} s"
    )
    return 0
