"""`ds-parrots export-hf`: our weights as a Hugging Face MistralForCausalLM (dense) or MixtralForCausalLM (MoE)
folder, loadable with `AutoModelForCausalLM.from_pretrained(dir)` and `lm_eval --model hf`.

    ds-parrots export-hf runs/my-run --out hf/my-run
    ds-parrots export-hf my-run.safetensors --out hf/my-run --dtype bfloat16

Weights are written in the layout of the Hub's Mistral / Mixtral checkpoints: dense names are ours unchanged;
an MoE layer's router and experts become `block_sparse_moe.gate` and per-expert `experts.<e>.w1` (gate),
`w3` (up), `w2` (down). transformers 4.x loads that layout as it is and transformers 5.x fuses it back into
its `mlp.experts.gate_up_proj` / `down_proj` on load (its conversion for Hub Mixtral checkpoints), so one
folder serves both, and vLLM too. The config carries both rope spellings (4.x `rope_theta`, 5.x
`rope_parameters`) and both dtype keys. transformers is never imported here: it is only a test extra.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from ds_parrots.checkpoints.state_dict_map import to_hf
from ds_parrots.config import ModelConfig, MoEConfig
from ds_parrots.errors import ConfigError

SHARD_BYTES = 5 * 10**9  # transformers' default max_shard_size


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def hf_config(
    cfg: ModelConfig, ids: dict, dtype: torch.dtype, router_aux_loss_coef: float = MoEConfig.aux_loss_coef
) -> dict:
    """config.json for `cfg`: MixtralConfig fields when it is an MoE, MistralConfig fields otherwise.

    `ids` holds the tokenizer's bos/eos/pad ids (None where it has none)."""
    name = {v: k for k, v in DTYPES.items()}[dtype]
    out = {
        "architectures": ["MixtralForCausalLM" if cfg.is_moe else "MistralForCausalLM"],
        "model_type": "mixtral" if cfg.is_moe else "mistral",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "initializer_range": cfg.init_std,
        "rms_norm_eps": cfg.norm_eps,
        # Both spellings: transformers 4.x reads rope_theta, 5.x rope_parameters (it would otherwise fall back
        # to its class default, 1e6 for Mixtral).
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "rope_scaling": None,
        "sliding_window": None,  # full causal attention, as trained (Mistral's default is a 4096 window)
        "attention_dropout": 0.0,
        "tie_word_embeddings": cfg.tie_embeddings,
        "use_cache": True,
        "bos_token_id": ids.get("bos"),
        "eos_token_id": ids.get("eos"),
        "pad_token_id": ids.get("pad"),
        "torch_dtype": name,
        "dtype": name,  # 4.x and 5.x names
    }
    if cfg.is_moe:
        out.update(
            num_local_experts=cfg.num_experts,
            num_experts_per_tok=cfg.top_k,
            output_router_logits=False,
            router_aux_loss_coef=router_aux_loss_coef,
            router_jitter_noise=0.0,
        )
    return out


def hf_tensors(state: dict[str, torch.Tensor], cfg: ModelConfig) -> Iterator[tuple[str, torch.Tensor]]:
    """(Hugging Face name, tensor) for each tensor of our canonical state dict, in order: the Hub Mixtral
    layout of state_dict_map (per-expert w1 / w3 / w2); tied embeddings drop lm_head (HF ties it)."""
    return to_hf(state, cfg)


def _shards(
    tensors: list[tuple[str, torch.Tensor]], dtype: torch.dtype, max_bytes: int
) -> list[list[tuple[str, torch.Tensor]]]:
    """Consecutive groups of at most max_bytes (a tensor larger than that gets a shard of its own)."""
    shards, size = [[]], 0
    for name, t in tensors:
        nbytes = t.numel() * dtype.itemsize
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, t))
        size += nbytes
    return shards


def write_weights(
    tensors: list[tuple[str, torch.Tensor]], out: Path, dtype: torch.dtype, max_bytes: int = SHARD_BYTES
) -> list[str]:
    """model.safetensors, or model-0000i-of-0000n.safetensors plus model.safetensors.index.json when the
    weights exceed max_bytes; one shard's tensors are converted at a time. Returns the file names."""
    from safetensors.torch import save_file

    shards = _shards(tensors, dtype, max_bytes)
    names = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    weight_map = {}
    for fname, shard in zip(names, shards):
        # `format: pt` is required by transformers 4.x's loader.
        save_file(
            {k: t.to(dtype).contiguous() for k, t in shard}, str(out / fname), metadata={"format": "pt"}
        )
        weight_map.update((k, fname) for k, _ in shard)
    if len(shards) > 1:
        total = sum(t.numel() * dtype.itemsize for _, t in tensors)
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        names.append("model.safetensors.index.json")
    return names


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; choose a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ConfigError(
            f"--out {out_dir} exists and is not empty; pass --overwrite to replace it, or choose "
            "another directory"
        )


def export_hf(
    state_dict: dict[str, torch.Tensor],
    model_cfg: ModelConfig,
    out_dir: Path,
    tokenizer=None,
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
    max_shard_bytes: int = SHARD_BYTES,
    router_aux_loss_coef: float = MoEConfig.aux_loss_coef,
) -> Path:
    """Write `out_dir` as a Hugging Face model folder: config.json, generation_config.json, the weights in
    safetensors (sharded above max_shard_bytes) and, given a tokenizer (a SentencePieceTokenizer, a path to a
    sentencepiece .model, or a task's SymbolTokenizer), its tokenizer files.

    `state_dict` is our canonical single-device state dict (`CausalLM(model_cfg).state_dict()` names and
    shapes); a missing, unexpected or mis-shaped tensor is a ConfigError naming it. Everything is written to
    a temporary folder beside out_dir and renamed at the end, so a failed export leaves nothing behind (and
    an overwritten folder stays as it was)."""
    from ds_parrots.checkpoints.hf_tokenizer import write_tokenizer
    from ds_parrots.checkpoints.tensors import check_against_model, model_shapes
    from ds_parrots.data.tokenizer import SentencePieceTokenizer

    out_dir = Path(out_dir)
    if dtype not in DTYPES.values():
        raise ConfigError(f"dtype {dtype} is not one of {', '.join(DTYPES)}")
    _check_out_dir(out_dir, overwrite)
    check_against_model(state_dict, model_shapes(model_cfg), "the state dict")
    if model_cfg.tie_embeddings and not torch.equal(
        state_dict["lm_head.weight"], state_dict["model.embed_tokens.weight"]
    ):
        raise ConfigError(
            "lm_head.weight differs from model.embed_tokens.weight but the model config ties them "
            "(tie_embeddings=True); the export would change the model"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        ids = {"bos": None, "eos": None, "pad": None}
        if isinstance(tokenizer, (str, Path)):
            tokenizer = SentencePieceTokenizer(tokenizer)
        if tokenizer is not None:
            if tokenizer.vocab_size > model_cfg.vocab_size:
                raise ConfigError(
                    f"the tokenizer has {tokenizer.vocab_size} ids but the model only "
                    f"{model_cfg.vocab_size} embeddings; it is not the tokenizer this model was "
                    "trained with"
                )
            try:
                ids = write_tokenizer(tokenizer, tmp, model_cfg.max_seq_len)
            except ValueError as e:
                raise ConfigError(f"cannot export the tokenizer: {e}") from None
        config = hf_config(model_cfg, ids, dtype, router_aux_loss_coef)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        generation = {k + "_token_id": v for k, v in ids.items() if v is not None}
        (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        write_weights(list(hf_tensors(state_dict, model_cfg)), tmp, dtype, max_shard_bytes)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; give it a plain mkdir's mode
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "dir")
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if old is not None:  # put the old folder back
                os.replace(old / "dir", out_dir)
                old.rmdir()
            raise
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir
