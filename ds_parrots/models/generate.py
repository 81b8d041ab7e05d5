"""Batched greedy decoding and scoring of a task's held-out queries, data-parallel over ranks.

Every rank runs the same number of forward passes (ZeRO-3 gathers parameters and AutoEP exchanges
tokens collectively, so a rank that stopped early would hang the others): query shards are padded
to equal length and the decode loop stops only when every rank is done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch
import torch.distributed as dist


def _all_ranks(flag: bool, device) -> bool:
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


@torch.no_grad()
def greedy_generate(
    forward: Callable[[torch.Tensor], torch.Tensor],
    prompts: list[list[int]],
    max_new_tokens: int,
    pad_id: int,
    eos_id: int,
    device,
    sync_ranks: bool = True,
    should_stop: Optional[Callable[[list[int]], bool]] = None,
) -> list[list[int]]:
    """Greedy continuation of each prompt (up to and including <eos>).

    `forward` is our CausalLM (decoded with a KV cache) or any callable ids -> logits (decoded by
    re-running the whole sequence). `sync_ranks`: keep every rank's forward count equal (needed when the
    model is sharded, as in training; an unsharded offline model passes False). `should_stop(tokens)`
    ends a row early (e.g. a stop string in its text)."""
    if not hasattr(forward, "new_cache"):
        return _uncached_greedy(forward, prompts, max_new_tokens, pad_id, eos_id, device)
    # Our CausalLM: prompts left-padded to one length, one prefill, then one token per step through the KV cache.
    width = max(len(p) for p in prompts)
    pad = torch.tensor([width - len(p) for p in prompts], device=device)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p, device=device)
    cache = forward.new_cache(pad, width + max_new_tokens)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    out: list[list[int]] = [[] for _ in prompts]
    step_input = ids
    for _ in range(max_new_tokens):
        if _all_ranks(bool(done.all()), device) if sync_ranks else bool(done.all()):
            break
        nxt = forward(step_input, cache)[:, -1].argmax(dim=-1)
        for row in torch.nonzero(~done).flatten().tolist():
            out[row].append(int(nxt[row]))
            if should_stop is not None and should_stop(out[row]):
                done[row] = True
        done = done | (nxt == eos_id)
        step_input = nxt.unsqueeze(1)
    return out


def _uncached_greedy(
    forward, prompts: list[list[int]], max_new_tokens: int, pad_id: int, eos_id: int, device
) -> list[list[int]]:
    """Prompts are right-padded; a causal model's logit at a sequence's last real position ignores the
    padding after it, so each row reads its own next token from its own position."""
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    width = int(lengths.max()) + max_new_tokens
    buf = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    for row, p in enumerate(prompts):
        buf[row, : len(p)] = torch.tensor(p, device=device)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    rows = torch.arange(len(prompts), device=device)
    out: list[list[int]] = [[] for _ in prompts]
    for _ in range(max_new_tokens):
        if _all_ranks(bool(done.all()), device):
            break
        logits = forward(buf[:, : int(lengths.max())])
        nxt = logits[rows, lengths - 1].argmax(dim=-1)
        active = ~done
        for row in torch.nonzero(active).flatten().tolist():
            out[row].append(int(nxt[row]))
        buf[rows[active], lengths[active]] = nxt[active]
        lengths = lengths + active.long()
        done = done | (active & (nxt == eos_id))
    return out
