"""Pre-training samples, addressed rather than iterated.

Each source's token stream (its documents concatenated, EOS after each) is cut into slots of
seq_len + 1 tokens: slot j holds tokens [j*L, j*L + L + 1) (L = seq_len; one token of overlap so every
position has a target). Sample i of the run is a pure function of (i, seed, mixture):

1. blending: i falls in block b = i // B; block b holds exactly C_s(b+1) - C_s(b) samples of source
   s, where C_s(b) = floor(b * B * w_s) (the heaviest source takes the remainder), evenly interleaved.
   Source s has therefore been drawn within S of b*B*w_s times after any b blocks: the weights hold
   exactly in the long run, and the k-th draw of s is known without counting.
2. the k-th training draw of source s is slot split(v_s + epoch_perm_e(k mod m_s)), e = k // m_s,
   where split and epoch_perm_e are keyed bijections (data/permutation.py) and the first v_s positions
   of split are that source's validation slots; m_s = n_s - v_s. Training never reads a validation slot,
   and each epoch visits every training slot once in a new order.

Nothing here scales with the corpus: no per-sample index is built, memory is O(B). A rank reads only
its own samples; resuming needs only the step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from ds_parrots.data.permutation import permute
from ds_parrots.data.step_layout import StepLayout
from ds_parrots.errors import ConfigError

BLOCK = 4096
_SPLIT, _EPOCH, _BLEND = 1, 2, 3  # key purposes


@lru_cache(maxsize=256)
def derive_key(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0])


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Largest-remainder split of `total` into integer parts proportional to `weights` (sum = total)."""
    exact = [total * w for w in weights]
    parts = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda s: (parts[s] - exact[s], s))
    for s in order[: total - sum(parts)]:
        parts[s] += 1
    return parts


class SourceSlots:
    """The sequence slots of one token stream, split into validation and shuffled training slots."""

    def __init__(self, name: str, tokens: np.ndarray, seq_len: int, num_val: int, key: int):
        self.name, self.tokens, self.seq_len, self.key = name, tokens, seq_len, key
        self.num_slots = (len(tokens) - 1) // seq_len
        self.num_val = num_val
        self.num_train = self.num_slots - num_val
        if self.num_train < 1:
            raise ConfigError(
                f"data source {name!r}: {len(tokens):,} tokens make {self.num_slots:,} sequences of "
                f"{seq_len + 1} tokens, not enough for its {num_val:,} validation sequences plus "
                "training; add data, lower --data.val-sequences or --data.seq-len"
            )

    def train_slots(self, k: np.ndarray) -> np.ndarray:
        """Slots of this source's training draws number k (any non-negative ints; k >= num_train wraps
        into later epochs, each in its own order)."""
        k = np.asarray(k, dtype=np.int64)
        epoch, pos = np.divmod(k, self.num_train)
        out = np.empty_like(k)
        for e in np.unique(epoch):
            sel = epoch == e
            out[sel] = permute(pos[sel], self.num_train, derive_key(self.key, _EPOCH, int(e)))
        return permute(self.num_val + out, self.num_slots, derive_key(self.key, _SPLIT))

    def val_slots(self) -> np.ndarray:
        return permute(np.arange(self.num_val), self.num_slots, derive_key(self.key, _SPLIT))

    def slot(self, slot: int) -> np.ndarray:
        """The seq_len + 1 tokens of a slot (a view of the memory-mapped file)."""
        start = slot * self.seq_len
        return self.tokens[start : start + self.seq_len + 1]


class Blend:
    """Which source, and which draw of it, global sample i is (see the module docstring)."""

    def __init__(self, weights: Sequence[float], seed: int, block: int = BLOCK):
        if len(weights) * len(weights) > block:
            raise ConfigError(f"a mixture of {len(weights)} sources needs a blending block > {block}")
        self.weights = [w / sum(weights) for w in weights]
        self.block, self.seed = block, seed
        self.last = max(range(len(weights)), key=lambda s: (self.weights[s], -s))

    def cumulative(self, b: int) -> np.ndarray:
        """Draws of each source in blocks 0 .. b-1."""
        total = b * self.block
        counts = np.array([math.floor(total * w) for w in self.weights], dtype=np.int64)
        counts[self.last] = 0
        counts[self.last] = total - counts.sum()
        return counts

    @lru_cache(maxsize=4)  # noqa: B019 (one sampler per run: the cache lives as long as it must)
    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self.cumulative(b), self.cumulative(b + 1)
        counts = stop - start
        # Stratified interleave: source s's j-th draw of the block sits at (j + u_s) / c_s of the way through
        # it (u_s a seeded offset), so every stretch of the block, down to a single micro-batch, holds each
        # source within one sample of its share, rather than a random shuffle's binomial scatter.
        offsets = np.random.default_rng(derive_key(self.seed, _BLEND, b)).random(len(counts))
        source = np.repeat(np.arange(len(counts)), counts)
        position = np.concatenate([(np.arange(c) + offsets[s]) / c for s, c in enumerate(counts) if c])
        source = source[np.argsort(position, kind="stable")]
        # k of each position: the source's draws before this block plus earlier positions of it here.
        draw = np.empty(self.block, dtype=np.int64)
        for s in range(len(self.weights)):
            where = np.flatnonzero(source == s)
            draw[where] = start[s] + np.arange(len(where))
        return source, draw

    def locate(self, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.asarray(i, dtype=np.int64)
        b, r = np.divmod(i, self.block)
        source, draw = np.empty_like(i), np.empty_like(i)
        for blk in np.unique(b):
            sel = b == blk
            src, k = self._block(int(blk))
            source[sel], draw[sel] = src[r[sel]], k[r[sel]]
        return source, draw


class PretrainSamples:
    """The run's training and validation sequences over a mixture of token streams."""

    def __init__(
        self,
        names: Sequence[str],
        streams: Sequence[np.ndarray],
        weights: Sequence[float],
        seq_len: int,
        seed: int,
        val_sequences: int,
    ):
        self.seq_len, self.seed = seq_len, seed
        val = apportion(val_sequences, [w / sum(weights) for w in weights])
        self.sources = [
            SourceSlots(n, t, seq_len, v, derive_key(seed, s))
            for s, (n, t, v) in enumerate(zip(names, streams, val))
        ]
        self.blend = Blend(weights, seed)
        self.dtype = np.result_type(*[t.dtype for t in streams])

    @lru_cache(maxsize=2)  # noqa: B019 (one sampler per run: the cache lives as long as it must)
    def _block_slots(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(source, slot) of every sample of blend block b. Computed for the whole block at once: the
        permutations cost per call, not per element, and consecutive steps read from the same block."""
        source, draw = self.blend._block(b)
        slots = np.empty_like(draw)
        for s in np.unique(source):
            rows = source == s
            slots[rows] = self.sources[int(s)].train_slots(draw[rows])
        return source, slots * self.seq_len

    def read(self, sample_ids) -> np.ndarray:
        """Training samples (global numbers) as rows of seq_len + 1 tokens, in the files' dtype."""
        ids = np.asarray(sample_ids, dtype=np.int64)
        out = np.empty((len(ids), self.seq_len + 1), dtype=self.dtype)
        width = self.seq_len + 1
        streams = [src.tokens for src in self.sources]
        blocks, within = np.divmod(ids, self.blend.block)
        for b in np.unique(blocks).tolist():
            rows = np.flatnonzero(blocks == b)
            source, start = self._block_slots(b)
            for row, s, first in zip(
                rows.tolist(), source[within[rows]].tolist(), start[within[rows]].tolist()
            ):
                out[row] = streams[s][first : first + width]
        return out

    def validation(self) -> list[tuple[int, int]]:
        """(source, slot) of every validation sequence, sources in mixture order."""
        return [(s, int(slot)) for s, src in enumerate(self.sources) for slot in src.val_slots()]

    def read_validation(self, items: Sequence[tuple[int, int]]) -> np.ndarray:
        out = np.empty((len(items), self.seq_len + 1), dtype=self.dtype)
        for row, (s, slot) in enumerate(items):
            out[row] = self.sources[s].slot(slot)
        return out

    def draws(self, num_samples: int) -> np.ndarray:
        """Exact number of training draws of each source among samples 0 .. num_samples-1."""
        b, r = divmod(num_samples, self.blend.block)
        counts = self.blend.cumulative(b)
        if r:
            src, _ = self.blend._block(b)
            counts = counts + np.bincount(src[:r], minlength=len(self.sources))
        return counts

    def epochs(self, num_samples: int) -> dict[str, float]:
        """Passes over each source's training sequences after num_samples samples."""
        return {src.name: int(n) / src.num_train for src, n in zip(self.sources, self.draws(num_samples))}


def to_batch(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.from_numpy(rows.astype(np.int64))
    return t[:, :-1].contiguous(), t[:, 1:].contiguous()


class PretrainBatches(StepLayout):
    """Micro-batches of a step on one rank (the layout of data/step_layout.py)."""

    def __init__(
        self, samples: PretrainSamples, global_batch: int, micro_batch: int, world_size: int, rank: int
    ):
        super().__init__(global_batch, micro_batch, world_size, rank)
        self.samples = samples

    def step_batches(self, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # One read for the whole step: the per-call cost is paid once, not per micro-batch.
        ids = np.concatenate([self.sample_ids(step, m) for m in range(self.accumulation)])
        rows = self.samples.read(ids)
        return [
            to_batch(rows[m * self.micro_batch : (m + 1) * self.micro_batch])
            for m in range(self.accumulation)
        ]

    def epochs_at(self, step: int) -> float:
        """Passes over the most-repeated source by the end of `step` (all sources: PretrainSamples.epochs)."""
        return max(self.samples.epochs((step + 1) * self.global_batch).values())
