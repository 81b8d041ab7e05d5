"""Loading any checkpoint we write or read (run directory, step directory, consolidated .safetensors,
Hugging Face folder) as one full-precision state dict plus its metadata: the library API that evaluation,
export and --train.init-from share.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

from ds_parrots.checkpoints.hf_import import hf_metadata, hf_model_config, hf_state_dict, is_hf_folder
from ds_parrots.checkpoints.tensors import check_against_model, load_tensors, model_shapes
from ds_parrots.config import ModelConfig
from ds_parrots.errors import ConfigError, UserError
from ds_parrots.parallel.checkpoint_format import read_checkpoint
from ds_parrots.training import checkpoint_manifest as manifest
from ds_parrots.training.checkpoint import is_complete, resume_tag, tags

FORMAT = "ds_parrots.consolidated"


VERSION = 1


def sidecar_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")


def resolve(path: Path) -> tuple[Path, Path]:
    """(checkpoint tag directory, run directory) for a run dir, its checkpoints/ dir, or one tag dir, whose
    files are all there at the sizes its completion marker records (a stat each: cheap, before launch)."""
    tag_dir, run_dir = _resolve(path)
    problem = manifest.check_files(tag_dir)
    if problem:
        raise ConfigError(manifest.unverified_message(tag_dir, problem, _older_verified(tag_dir)))
    return tag_dir, run_dir


def _older_verified(tag_dir: Path) -> Optional[str]:
    """The newest checkpoint of the run older than `tag_dir` that verifies in full, for the message."""
    from ds_parrots.training.checkpoint import newest_verified

    older = newest_verified(tag_dir.parent, exclude=tag_dir.name)
    return older if older and older < tag_dir.name else None


def verified(tag_dir: Path) -> Path:
    """`tag_dir`, once every file of it matches the checksum recorded when it was saved (read in full);
    otherwise a ConfigError naming the file and the older checkpoint of the run that does verify."""
    problem = manifest.verify(tag_dir)
    if problem:
        raise ConfigError(manifest.unverified_message(tag_dir, problem, _older_verified(tag_dir)))
    return tag_dir


def _resolve(path: Path) -> tuple[Path, Path]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such checkpoint, run directory or file")
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if (path / "latest").is_file() or (path.is_dir() and any(is_complete(path / t) for t in tags(path))):
        tag = resume_tag(path)
        if tag is None:
            named = (path / "latest").read_text().strip() if (path / "latest").is_file() else ""
            raise ConfigError(
                f"{path} holds no complete checkpoint: {path / 'latest'} names {named!r}, which is "
                "missing or unfinished; write the name of a complete step directory into it, or pass "
                "that step directory itself"
            )
        return path / tag, path.parent
    if path.is_dir() and any(p.name.endswith("model_states.pt") for p in path.iterdir()):
        if not is_complete(path) and any(is_complete(path.parent / t) for t in tags(path.parent)):
            raise ConfigError(
                f"{path} is an unfinished checkpoint (its save was interrupted: no "
                f"ds_parrots_complete.json); use {path.parent.parent} for the newest complete one"
            )
        return path, path.parent.parent
    raise ConfigError(
        f"{path} is neither a run directory (with checkpoints/latest) nor a checkpoint step "
        "directory (with *model_states.pt)"
    )


def run_metadata(run_dir: Path, tag_dir: Path) -> dict:
    """What an evaluation needs to rebuild the model and its inputs, from the run's config.json."""
    cfg_path = Path(run_dir) / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(
            f"{cfg_path} is missing: the checkpoint {tag_dir} cannot be read without the run's "
            "configuration (ds_parrots writes it when a run starts)"
        )
    config = json.loads(cfg_path.read_text())
    for key in ("model", "train"):
        if key not in config:
            raise ConfigError(f"{cfg_path} has no '{key}' section; is it a ds_parrots run configuration?")
    tag = tag_dir.name
    step = int(tag[4:]) if tag.startswith("step") and tag[4:].isdigit() else None
    moe = (config.get("moe") or {}) if int(config["model"].get("num_experts", 1)) > 1 else {}
    tokenizer = (config.get("data") or {}).get("tokenizer")
    if tokenizer is not None:
        tokenizer = str(Path(tokenizer).resolve())
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": config["model"],
        "moe_backend": moe.get("backend"),
        "ep_size": moe.get("ep_size", 1),
        "zero_stage": config["train"].get("zero_stage"),
        "precision": config["train"].get("precision"),
        "task_name": config.get("task_name"),
        "task_config": config.get("task"),
        "tokenizer": tokenizer,
        "data": config.get("data"),
        "step": step,
        "source": str(tag_dir.resolve()),
        "run_config": config,
    }


def model_config(meta: dict, source: Path) -> ModelConfig:
    try:
        return ModelConfig(**meta["model"])
    except (TypeError, KeyError, UserError) as e:
        raise ConfigError(
            f"{source}: the saved model configuration is not one this ds_parrots can build ({e})"
        ) from None


def _read_sidecar(weights: Path) -> dict:
    side = sidecar_path(weights)
    if not side.is_file():
        raise ConfigError(
            f"{weights}: its sidecar {side} is missing (it holds the model configuration); "
            "consolidate again or copy the .json next to the .safetensors"
        )
    meta = json.loads(side.read_text())
    if meta.get("format") != FORMAT:
        raise ConfigError(
            f"{side} is not a ds_parrots consolidated-checkpoint sidecar (format {meta.get('format')!r})"
        )
    return meta


def checkpoint_metadata(path: Path) -> dict:
    """The metadata of a consolidated file or checkpoint without reading its weights (cheap, pre-launch)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        return _read_sidecar(path)
    if is_hf_folder(path):
        return hf_metadata(path, hf_model_config(path))
    tag_dir, run_dir = resolve(path)
    return run_metadata(run_dir, tag_dir)


def consolidated_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(fp32 state dict in the single-device model's names, metadata) from a consolidated .safetensors
    file, a run directory, one checkpoint step directory, or a Hugging Face Mistral / Mixtral folder. The
    state dict is checked against the model."""
    path = Path(path)
    if is_hf_folder(path):
        cfg = hf_model_config(path)
        meta = hf_metadata(path, cfg)
        state = hf_state_dict(path, cfg)
    elif path.suffix == ".safetensors":
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        meta = _read_sidecar(path)
        state = load_tensors(path)
    else:
        tag_dir, run_dir = resolve(path)
        meta = run_metadata(run_dir, tag_dir)
        cfg = model_config(meta, run_dir / "config.json")
        state = read_checkpoint(verified(tag_dir), cfg, int(meta.get("ep_size") or 1))
    cfg = model_config(meta, path)
    check_against_model(state, model_shapes(cfg), path)
    return state, meta


def load_model(path: Path, dtype: torch.dtype = torch.float32):
    """(the single-device CausalLM with the checkpoint's weights, in eval mode, metadata). MoE models load
    into the dropless reference layer whatever backend trained them."""
    from ds_parrots.models import build_model

    state, meta = consolidated_state(path)
    model = build_model(model_config(meta, path))
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval(), meta
