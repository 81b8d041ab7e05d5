"""Which samples of the run each rank reads at each step: the one layout every batch source shares.

Micro-batch m of optimizer step s on rank r holds global samples s*G + (m*W + r)*B ... + B-1 (G global
batch, W data-parallel ranks, B micro batch). Every step covers samples s*G .. s*G + G-1 exactly once
whatever W and B are, so a rank builds only its own samples and resuming at step s needs nothing but s.
"""

from __future__ import annotations

import numpy as np


class StepLayout:
    def __init__(self, global_batch: int, micro_batch: int, world_size: int, rank: int):
        self.global_batch, self.micro_batch = global_batch, micro_batch
        self.world_size, self.rank = world_size, rank
        self.accumulation = global_batch // (micro_batch * world_size)

    def sample_ids(self, step: int, micro: int) -> np.ndarray:
        """Global sample numbers of micro-batch `micro` of optimizer step `step` on this rank."""
        start = step * self.global_batch + (micro * self.world_size + self.rank) * self.micro_batch
        return np.arange(start, start + self.micro_batch)
