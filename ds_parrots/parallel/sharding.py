"""Evaluation sharded over data-parallel ranks that stay in lockstep: ZeRO-3 gathers parameters and MoE layers
exchange tokens collectively, so every rank must run the same number of forward passes even when the items do
not split evenly."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence


def lockstep_batches(items: Sequence, rank: int, world_size: int, batch_size: int) -> Iterator[list]:
    """This rank's items (every world_size-th from `rank`) in batches of `batch_size`, as many batches on every
    rank; a rank that runs out gets empty batches, for which the caller runs a stand-in forward and counts
    nothing."""
    shard = list(items[rank::world_size])
    per_rank = math.ceil(len(items) / world_size)
    for b in range(math.ceil(per_rank / batch_size) if per_rank else 0):
        yield shard[b * batch_size : (b + 1) * batch_size]
