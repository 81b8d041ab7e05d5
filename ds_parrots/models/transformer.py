"""The Mistral-style decoder: RMSNorm, rotary, grouped-query SDPA attention, SwiGLU, no biases.

Plain single-device PyTorch. Module and parameter names follow Hugging Face's Mistral/Mixtral
(`model.layers.<i>.self_attn.q_proj`, `model.layers.<i>.mlp.experts.gate_up_proj`, ...) so that
DeepSpeed AutoEP's "mixtral" preset, checkpoint consolidation and the HF export see one layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ds_parrots.config import ModelConfig
from ds_parrots.models.feed_forward import SwiGLU
from ds_parrots.models.moe import MoEFeedForward


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalize in fp32 as Mistral does: bf16 squares lose precision.
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotary_tables(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape [seq_len, head_dim], each frequency repeated over the two halves (HF layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, S, Dh] by position: pairs (i, i + Dh/2) turn by angle pos * theta^(-2i/Dh)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, for incremental decoding of a batch of left-padded
    prompts: row b starts with pad[b] padding tokens, which no real token attends to and which do not
    shift positions (rotary position = buffer index - pad[b])."""

    keys: list[torch.Tensor]
    """Per layer [B, kv_heads, capacity, head_dim]."""
    values: list[torch.Tensor]
    pad: torch.Tensor
    """[B] left-padding of each row."""
    length: int = 0
    """Buffer positions filled so far."""

    @classmethod
    def allocate(cls, cfg: ModelConfig, pad: torch.Tensor, capacity: int, dtype: torch.dtype) -> KVCache:
        shape = (pad.shape[0], cfg.kv_heads, capacity, cfg.head_dim)
        return cls(
            [torch.zeros(shape, dtype=dtype, device=pad.device) for _ in range(cfg.n_layers)],
            [torch.zeros(shape, dtype=dtype, device=pad.device) for _ in range(cfg.n_layers)],
            pad,
        )

    def attention_mask(self, s: int) -> torch.Tensor:
        """[B, 1, s, length + s]: causal, real keys only; a padding query sees itself (an all-masked row
        would give NaN, and NaN times a zero weight is still NaN)."""
        q = torch.arange(self.length, self.length + s, device=self.pad.device)
        k = torch.arange(self.length + s, device=self.pad.device)
        causal = k[None, None, :] <= q[None, :, None]
        real = k[None, None, :] >= self.pad[:, None, None]
        return ((causal & real) | (k[None, None, :] == q[None, :, None])).unsqueeze(1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        d = cfg.d_model
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: Optional[tuple[KVCache, int, torch.Tensor]] = None,
    ) -> torch.Tensor:
        """`cache`: (the cache, this layer's index, the attention mask); keys and values are appended."""
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        mask = None
        if cache is not None:
            kv, layer, mask = cache
            end = kv.length + s
            kv.keys[layer][:, :, kv.length : end] = k
            kv.values[layer][:, :, kv.length : end] = v
            k, v = kv.keys[layer][:, :, :end], kv.values[layer][:, :, :end]
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, mlp: nn.Module):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = mlp

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache=None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class DecoderStack(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(DecoderLayer(cfg, feed_forward(cfg)) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        cos, sin = rotary_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        # Not persistent: they are a function of the config, and ZeRO-3 must not partition them.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, input_ids: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
        s = input_ids.shape[1]
        end = s if cache is None else cache.length + s
        if end > self.rope_cos.shape[0]:
            raise ValueError(f"sequence of {end} tokens exceeds max_seq_len={self.rope_cos.shape[0]}")
        x = self.embed_tokens(input_ids)
        if cache is None:
            cos, sin = self.rope_cos[:s], self.rope_sin[:s]
            for layer in self.layers:
                x = layer(x, cos, sin)
            return self.norm(x)
        positions = (
            torch.arange(cache.length, end, device=input_ids.device)[None, :] - cache.pad[:, None]
        ).clamp(min=0)
        cos, sin = (
            self.rope_cos[positions].unsqueeze(1),
            self.rope_sin[positions].unsqueeze(1),
        )  # [B, 1, s, Dh]
        mask = cache.attention_mask(s)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, (cache, i, mask))
        cache.length = end
        return self.norm(x)


def feed_forward(cfg: ModelConfig) -> nn.Module:
    """One block's feed-forward: SwiGLU, or the Mixtral-style MoE when cfg.num_experts > 1."""
    if cfg.is_moe:
        return MoEFeedForward(cfg.d_model, cfg.ffn, cfg.num_experts, cfg.top_k)
    return SwiGLU(cfg.d_model, cfg.ffn)


class CausalLM(nn.Module):
    """Decoder + output head. `forward(input_ids)` returns logits [B, S, vocab]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.model = DecoderStack(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def _init_weights(self, module: nn.Module) -> None:
        std = self.cfg.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        for p in module.parameters(recurse=False):
            if p.dim() == 3:  # fused expert weights [E, out, in]
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, input_ids: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
        """Logits [B, S, vocab]. With `cache` (see KVCache), input_ids continue the cached tokens."""
        return self.lm_head(self.model(input_ids, cache))

    def new_cache(self, pad: torch.Tensor, capacity: int) -> KVCache:
        return KVCache.allocate(self.cfg, pad, capacity, self.lm_head.weight.dtype)
