"""A keyed bijection on [0, n): a shuffle of n items that stores nothing.

`permute(i, n, key)` is the position of item i in a seeded shuffle of range(n), computed in O(1)
time and memory per index (vectorized over numpy arrays). It is a 4-round alternating Feistel network
on the smallest power-of-two domain >= n, with cycle walking to stay inside [0, n): a bijection for
any n, so no index is repeated or lost, and nothing about the corpus needs to be held in RAM.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
ROUNDS = 4


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a fast 64-bit hash with full avalanche (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@lru_cache(maxsize=64)
def _round_keys(key: int) -> list[tuple[np.uint64, np.uint64]]:
    """Per round: a key xored into the half, and an odd multiplier (multiplicative hashing)."""
    k = np.uint64(key & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        raw = _mix(k + np.arange(1, 2 * ROUNDS + 1, dtype=np.uint64) * _GOLDEN)
    return [(raw[2 * r] & np.uint64(0xFFFFFFFF), raw[2 * r + 1] | np.uint64(1)) for r in range(ROUNDS)]


def _feistel(x: np.ndarray, bits: int, keys) -> np.ndarray:
    """Alternating (unbalanced) Feistel rounds on `bits`-bit values: x = (hi: bits - lo_bits, lo: lo_bits);
    even rounds xor a hash of lo into hi, odd rounds a hash of hi into lo. Each round is invertible, so the
    whole is a bijection of [0, 2^bits), for odd `bits` too: the domain is < 2n, not < 4n, which halves
    the expected cycle walking. The hash: the top bits of (half ^ k) * m, multiplicative hashing, 3
    array operations, which keeps a batch of lookups far cheaper than reading the samples."""
    lo_bits = bits // 2
    hi_bits = bits - lo_bits
    lo_mask = np.uint64((1 << lo_bits) - 1)
    lo, hi = x & lo_mask, x >> np.uint64(lo_bits)
    for r, (k, m) in enumerate(keys):
        if r % 2 == 0:
            hi = hi ^ (((lo ^ k) * m) >> np.uint64(64 - hi_bits))
        else:
            lo = lo ^ (((hi ^ k) * m) >> np.uint64(64 - lo_bits))
    return (hi << np.uint64(lo_bits)) | lo


def permute(index, n: int, key: int):
    """Image of `index` (int or array of ints in [0, n)) under the permutation of range(n) keyed by `key`."""
    if n < 1:
        raise ValueError(f"permutation domain must be >= 1, got {n}")
    scalar = np.ndim(index) == 0
    idx = np.atleast_1d(np.asarray(index, dtype=np.uint64))
    if idx.size and int(idx.max()) >= n:
        raise IndexError(f"index {int(idx.max())} out of range for a permutation of {n}")
    if n == 1:
        out = np.zeros(idx.shape, dtype=np.int64)
        return out[0] if scalar else out
    bits = max(2, (n - 1).bit_length())
    keys = _round_keys(key)
    with np.errstate(over="ignore"):
        out = _feistel(idx, bits, keys)
        # Cycle walking: re-encrypt values that left [0, n) until they come back (the domain is < 2n, so
        # half of them each pass); following a value's cycle keeps this a bijection on [0, n).
        outside = out >= np.uint64(n)
        while outside.any():
            out[outside] = _feistel(out[outside], bits, keys)
            outside = out >= np.uint64(n)
    out = out.astype(np.int64)
    return out[0] if scalar else out
