"""Parameter counts (total, active, non-embedding) and training FLOPs per token, from the config.

Every plot of the paper has total or active parameters on its x-axis, so these counts are computed
analytically (no model needs to be built, e.g. for a sweep of 2B-parameter configs) and tested
against a direct count of `model.parameters()`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ds_parrots.config import ModelConfig


@dataclass(frozen=True)
class ParamCounts:
    total: int
    """Every parameter (experts included), embedding and output head included."""
    active: int
    """Parameters one token uses: all but the experts it is not routed to (router included)."""
    embedding: int
    """Input embedding plus the output head (counted once when tied)."""
    non_embedding_total: int
    non_embedding_active: int

    def as_dict(self) -> dict:
        return asdict(self)


def _attention(cfg: ModelConfig) -> int:
    q = cfg.n_heads * cfg.head_dim
    kv = cfg.kv_heads * cfg.head_dim
    return cfg.d_model * q + 2 * cfg.d_model * kv + q * cfg.d_model


def _expert(cfg: ModelConfig) -> int:
    return 3 * cfg.d_model * cfg.ffn


def count_params(cfg: ModelConfig) -> ParamCounts:
    d, L = cfg.d_model, cfg.n_layers
    norms = 2 * d * L + d
    attention = _attention(cfg) * L
    if cfg.is_moe:
        router = d * cfg.num_experts * L
        ffn_total = router + _expert(cfg) * cfg.num_experts * L
        ffn_active = router + _expert(cfg) * cfg.top_k * L
    else:
        ffn_total = ffn_active = _expert(cfg) * L
    embedding = cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2)
    body_total = norms + attention + ffn_total
    body_active = norms + attention + ffn_active
    return ParamCounts(
        total=body_total + embedding,
        active=body_active + embedding,
        embedding=embedding,
        non_embedding_total=body_total,
        non_embedding_active=body_active,
    )


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs (forward + backward) per token, PaLM's accounting (appendix B): 6 N + 12 L H Q T.

    6 N: 2 FLOPs per multiply-add forward and 4 backward, for each of the N matmul weights a token uses:
    attention projections, the router, the top-k experts (or the dense FFN), the output head. The input
    embedding is a lookup and norms are elementwise, so neither counts. 12 L H Q T: attention scores and
    weighted values, H heads of size Q over T = seq_len keys in each of L layers. As in PaLM, nanoGPT and
    torchtitan the causal mask is not discounted (a kernel that skips masked blocks does about half of
    this term), so our MFU compares with published figures."""
    counts = count_params(cfg)
    matmul = counts.non_embedding_active - (2 * cfg.n_layers + 1) * cfg.d_model + cfg.vocab_size * cfg.d_model
    attention = 12 * cfg.n_layers * seq_len * cfg.n_heads * cfg.head_dim
    return 6.0 * matmul + attention


def human(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(int(n))


def describe(cfg: ModelConfig) -> str:
    c = count_params(cfg)
    kind = f"MoE {cfg.num_experts} experts top-{cfg.top_k}" if cfg.is_moe else "dense"
    return (
        f"model: {kind}, L={cfg.n_layers} d={cfg.d_model} heads={cfg.n_heads}/{cfg.kv_heads} "
        f"ffn={cfg.ffn} vocab={cfg.vocab_size} | params total {human(c.total)} ({c.total:,}), "
        f"active {human(c.active)} ({c.active:,}), non-embedding total {human(c.non_embedding_total)} "
        f"active {human(c.non_embedding_active)}"
    )
