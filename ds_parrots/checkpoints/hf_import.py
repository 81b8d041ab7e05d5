"""Read a Hugging Face Mistral / Mixtral folder (our export, or any such checkpoint with a sentencepiece
tokenizer.model) back into the single-device model's state dict, so ds-parrots-eval scores exports and
outside baselines with the same harness. The inverse of hf_export.hf_tensors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ds_parrots.errors import ConfigError
from ds_parrots.config import ModelConfig

_EXPERT = re.compile(r"^(model\.layers\.\d+)\.block_sparse_moe\.experts\.(\d+)\.(w[123])\.weight$")


def is_hf_folder(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file() and (
        (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file())


def hf_model_config(path: Path) -> ModelConfig:
    cfg = json.loads((Path(path) / "config.json").read_text())
    kind = cfg.get("model_type")
    if kind not in ("mistral", "mixtral"):
        raise ConfigError(f"{path}/config.json: model_type {kind!r}; ds-parrots-eval reads Mistral and Mixtral "
                          "folders (our export-hf writes those)")
    if cfg.get("sliding_window") not in (None, 0) and cfg["sliding_window"] < cfg.get("max_position_embeddings", 0):
        raise ConfigError(f"{path}/config.json: sliding-window attention ({cfg['sliding_window']}) is not "
                          "implemented by our model, which attends to the whole context")
    rope = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta") or 10000.0
    try:
        return ModelConfig(vocab_size=cfg["vocab_size"], d_model=cfg["hidden_size"], n_layers=cfg["num_hidden_layers"],
                           n_heads=cfg["num_attention_heads"], n_kv_heads=cfg.get("num_key_value_heads"),
                           ffn_dim=cfg["intermediate_size"], num_experts=cfg.get("num_local_experts", 1),
                           top_k=cfg.get("num_experts_per_tok", 2) if kind == "mixtral" else 2,
                           max_seq_len=cfg.get("max_position_embeddings", 2048), rope_theta=float(rope),
                           norm_eps=cfg.get("rms_norm_eps", 1e-5), tie_embeddings=bool(cfg.get("tie_word_embeddings")))
    except KeyError as e:
        raise ConfigError(f"{path}/config.json lacks the field {e}") from None


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    from ds_parrots.checkpoints.tensors import load_tensors

    index = path / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file()
             else ["model.safetensors"])
    out = {}
    for f in files:
        out.update(load_tensors(path / f))
    return out


def hf_state_dict(path: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """fp32 tensors under our names: Hub Mixtral's per-expert w1 (gate) / w3 (up) / w2 (down) are stacked
    into experts.gate_up_proj [E, 2F, d] and experts.down_proj [E, d, F]."""
    experts: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    out = {}
    for name, t in _load_weights(Path(path)).items():
        t = t.float()
        if m := _EXPERT.match(name):
            experts.setdefault((m.group(1), m.group(3)), {})[int(m.group(2))] = t
        elif ".block_sparse_moe.gate." in name:
            out[name.replace(".block_sparse_moe.gate.", ".mlp.gate.")] = t
        elif ".mlp.experts.gate_up_proj" in name or ".mlp.experts.down_proj" in name:
            out[name] = t  # transformers 5 saves the fused layout, which is ours
        else:
            out[name] = t
    for layer in sorted({p for p, _ in experts}):
        w = {k: experts.get((layer, k), {}) for k in ("w1", "w2", "w3")}
        if any(sorted(v) != list(range(cfg.num_experts)) for v in w.values()):
            raise ConfigError(f"{path}: {layer} does not hold experts 0..{cfg.num_experts - 1} (w1/w2/w3)")
        gate = torch.stack([w["w1"][e] for e in range(cfg.num_experts)])
        up = torch.stack([w["w3"][e] for e in range(cfg.num_experts)])
        out[f"{layer}.mlp.experts.gate_up_proj"] = torch.cat([gate, up], dim=1)
        out[f"{layer}.mlp.experts.down_proj"] = torch.stack([w["w2"][e] for e in range(cfg.num_experts)])
    if cfg.tie_embeddings and "lm_head.weight" not in out:
        out["lm_head.weight"] = out["model.embed_tokens.weight"]
    return out


def hf_metadata(path: Path, cfg: ModelConfig) -> dict:
    """The consolidated-checkpoint metadata an evaluation reads, for a Hugging Face folder."""
    import dataclasses

    tok = Path(path) / "tokenizer.model"
    return {"format": "hf", "model": dataclasses.asdict(cfg), "moe_backend": "hf" if cfg.is_moe else None,
            "tokenizer": str(tok.resolve()) if tok.is_file() else None, "task_name": None, "task_config": None,
            "step": None, "source": str(Path(path).resolve())}
