"""What every ds-parrots-eval command needs: the process group, the device, the model and its tokenizer,
the results header and the atomic write of a results file on rank 0."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from ds_parrots.errors import ConfigError


def distributed() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    from ds_parrots.parallel.process_group import ensure_process_group

    ensure_process_group()
    import torch.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def device(choice: str, rank: int):
    import torch

    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no GPU is visible to this process")
        local = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
        return torch.device("cuda", local)
    return torch.device("cpu")


def default_out(checkpoint: Path, stem: str) -> Path:
    """<file>.<stem>.json beside a .safetensors, <stem>_results.json in an HF folder or the run directory."""
    checkpoint = Path(checkpoint)
    if checkpoint.suffix == ".safetensors":
        return checkpoint.with_suffix(f".{stem}.json")
    from ds_parrots.checkpoints.hf_import import is_hf_folder
    from ds_parrots.checkpoints.load import resolve

    if is_hf_folder(checkpoint):
        return checkpoint / f"{stem}_results.json"

    return resolve(checkpoint)[1] / f"{stem}_results.json"


def tokenizer(meta: dict, override: Optional[Path], model_vocab: int, checkpoint: Path):
    """The export's tokenizer (see harness/tokenizer.py), checked against the model's vocabulary."""
    from ds_parrots.data.tokenizer import check_model_vocab
    from ds_parrots_eval.harness.tokenizer import load_tokenizer

    tok = load_tokenizer(meta, override, checkpoint)
    check_model_vocab(
        model_vocab,
        tok.vocab_size,
        tok.source if override or not meta.get("tokenizer") else meta["tokenizer"],
    )
    return tok


def meta_of(checkpoint: Path) -> dict:
    """The checkpoint's metadata without its weights (cheap: checks run before the model loads)."""
    from ds_parrots.checkpoints.load import checkpoint_metadata

    return checkpoint_metadata(checkpoint)


def lm_eval_installed() -> None:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise ConfigError(
            'benchmarks run on lm-evaluation-harness, which is not installed: pip install -e ".[eval]"'
        ) from None


def _plain(value):
    """JSON for what lm-eval's results hold besides plain data: numpy numbers, sets, functions of a task
    config (written as their name, as lm-eval's own result files do)."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def write_samples(samples: dict, out: Path) -> Path:
    """lm-eval's per-document samples, one JSON line each, in <out>.samples/<task>.jsonl."""
    from lm_eval.utils import handle_non_serializable

    from ds_parrots.fileio import write_text_atomic

    folder = out.with_suffix(".samples")
    folder.mkdir(parents=True, exist_ok=True)
    for task, rows in samples.items():
        text = "".join(
            json.dumps(r, default=handle_non_serializable, ensure_ascii=False) + "\n" for r in rows
        )
        write_text_atomic(folder / f"{task}.jsonl", text)
    return folder


def load(checkpoint: Path, device, dtype: str):
    import torch

    from ds_parrots.checkpoints.load import load_model

    model, meta = load_model(checkpoint, torch.bfloat16 if dtype == "bfloat16" else torch.float32)
    return model.to(device), meta


def header(checkpoint: Path, meta: dict, kind: str) -> dict:
    from ds_parrots.checkpoints.load import model_config
    from ds_parrots.models.counting import count_params

    cfg = model_config(meta, checkpoint)
    return {
        "kind": kind,
        "checkpoint": str(checkpoint),
        "source": meta.get("source"),
        "step": meta.get("step"),
        "params": count_params(cfg).as_dict(),
        "model": meta["model"],
        "moe_backend": meta.get("moe_backend"),
        "task_name": meta.get("task_name"),
    }


def write(results: dict, out: Path, rank: int) -> None:
    if rank != 0:
        return
    from ds_parrots.fileio import write_text_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(results, indent=2, default=_plain) + "\n")
    print(f"results in {out}")
