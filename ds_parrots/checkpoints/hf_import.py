"""Read a Hugging Face Mistral / Mixtral folder (our export, or any such checkpoint with a sentencepiece
tokenizer.model) back into the single-device model's state dict, so ds-parrots-eval scores exports and
outside baselines with the same harness. The inverse of hf_export.hf_tensors."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ds_parrots.checkpoints.state_dict_map import from_hf
from ds_parrots.config import ModelConfig
from ds_parrots.errors import ConfigError


def is_hf_folder(path: Path) -> bool:
    path = Path(path)
    return (
        path.is_dir()
        and (path / "config.json").is_file()
        and ((path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file())
    )


def hf_model_config(path: Path) -> ModelConfig:
    cfg = json.loads((Path(path) / "config.json").read_text())
    kind = cfg.get("model_type")
    if kind not in ("mistral", "mixtral"):
        raise ConfigError(
            f"{path}/config.json: model_type {kind!r}; ds-parrots-eval reads Mistral and Mixtral "
            "folders (our export-hf writes those)"
        )
    if cfg.get("sliding_window") not in (None, 0) and cfg["sliding_window"] < cfg.get(
        "max_position_embeddings", 0
    ):
        raise ConfigError(
            f"{path}/config.json: sliding-window attention ({cfg['sliding_window']}) is not "
            "implemented by our model, which attends to the whole context"
        )
    rope = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta") or 10000.0
    try:
        return ModelConfig(
            vocab_size=cfg["vocab_size"],
            d_model=cfg["hidden_size"],
            n_layers=cfg["num_hidden_layers"],
            n_heads=cfg["num_attention_heads"],
            n_kv_heads=cfg.get("num_key_value_heads"),
            ffn_dim=cfg["intermediate_size"],
            num_experts=cfg.get("num_local_experts", 1),
            top_k=cfg.get("num_experts_per_tok", 2) if kind == "mixtral" else 2,
            max_seq_len=cfg.get("max_position_embeddings", 2048),
            rope_theta=float(rope),
            norm_eps=cfg.get("rms_norm_eps", 1e-5),
            tie_embeddings=bool(cfg.get("tie_word_embeddings")),
        )
    except KeyError as e:
        raise ConfigError(f"{path}/config.json lacks the field {e}") from None


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    from ds_parrots.checkpoints.tensors import load_tensors

    index = path / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.is_file()
        else ["model.safetensors"]
    )
    out = {}
    for f in files:
        out.update(load_tensors(path / f))
    return out


def hf_state_dict(path: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """fp32 tensors under our names (state_dict_map.from_hf): Hub Mixtral's per-expert w1 (gate) / w3 (up) /
    w2 (down) are stacked into experts.gate_up_proj [E, 2F, d] and experts.down_proj [E, d, F]."""
    return from_hf(_load_weights(Path(path)), cfg, source=str(path), dtype=torch.float32)


def hf_metadata(path: Path, cfg: ModelConfig) -> dict:
    """The consolidated-checkpoint metadata an evaluation reads, for a Hugging Face folder."""
    import dataclasses

    tok = Path(path) / "tokenizer.model"
    return {
        "format": "hf",
        "model": dataclasses.asdict(cfg),
        "moe_backend": "hf" if cfg.is_moe else None,
        "tokenizer": str(tok.resolve()) if tok.is_file() else None,
        "task_name": None,
        "task_config": None,
        "step": None,
        "source": str(Path(path).resolve()),
    }
