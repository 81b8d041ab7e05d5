"""Reading random pre-training samples: our sampler against a plain numpy copy of the same bytes.

    python bench/bench_sampler.py [--tokens 268435456 --seq-len 2048 --batch 512]

Writes a two-source corpus (random uint16 tokens) to a temporary directory, then times, over the same global
sample numbers (consecutive batches from a random point of the run, as training reads them), (a)
`PretrainSamples.read` (blend lookup, keyed permutations, copy out of the memory-mapped .bin) and (b) the
baseline: copying the same seq_len + 1 token windows out of the same memmap with plain numpy slicing into a
fresh array, their positions computed beforehand and untimed. Both run warm (the file in the page cache) and
alternate, so neither gets the cache the other warmed. Prints samples/s, GB/s and ours / baseline.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


@dataclass
class Bench:
    tokens: int = 1 << 28
    """Corpus size in tokens over both sources (uint16: 2 bytes each on disk)."""
    seq_len: int = 2048
    """Tokens per sample (each read is seq_len + 1 tokens)."""
    batch: int = 512
    """Samples per timed read (the paper's global batch)."""
    rounds: int = 64
    """Consecutive timed batches per method; the mean is reported."""
    weights: tuple[float, float] = (0.7, 0.3)
    """Mixture weights of the two sources."""
    dir: str = ""
    """Where to write the corpus ('' : a temporary directory, removed after)."""


def write_corpus(root: Path, tokens: int, weights) -> list[Path]:
    from ds_parrots.data.indexed import IndexedWriter

    rng = np.random.default_rng(0)
    prefixes = []
    for s, w in enumerate(weights):
        prefix = root / f"source{s}"
        with IndexedWriter(prefix, np.uint16) as writer:
            left = int(tokens * w)
            while left > 0:
                n = min(left, 1 << 20)  # 1M-token documents
                writer.add_document(rng.integers(3, 32000, n, dtype=np.uint16))
                left -= n
        prefixes.append(prefix)
    return prefixes


def main() -> None:
    import tyro

    from ds_parrots.data.indexed import IndexedDataset
    from ds_parrots.data.sampler import PretrainSamples

    bench = tyro.cli(Bench, description=__doc__)
    root = Path(bench.dir or tempfile.mkdtemp(prefix="bench_sampler_"))
    root.mkdir(parents=True, exist_ok=True)
    need = bench.tokens * 2 * 1.1
    if shutil.disk_usage(root).free < need:
        raise SystemExit(
            f"error: {root} has less than {need / 2**30:.1f} GiB free for the corpus; pass --dir or "
            "fewer --tokens"
        )
    try:
        t = time.perf_counter()
        prefixes = write_corpus(root, bench.tokens, bench.weights)
        print(f"# corpus: {bench.tokens:,} tokens in 2 sources, written in {time.perf_counter() - t:.1f} s")
        datasets = [IndexedDataset(p) for p in prefixes]
        samples = PretrainSamples(
            ["source0", "source1"],
            [d.tokens for d in datasets],
            list(bench.weights),
            bench.seq_len,
            seed=0,
            val_sequences=5000,
        )
        width = bench.seq_len + 1
        for d in datasets:  # warm the page cache for both methods
            d.tokens.sum(dtype=np.uint64)

        def positions(ids):
            source, draw = samples.blend.locate(ids)
            slots = np.empty_like(draw)
            for s in np.unique(source):
                rows = source == s
                slots[rows] = samples.sources[int(s)].train_slots(draw[rows])
            return source, slots

        def baseline(source, slots):
            # What any reader must do at least: a fresh batch array, one slice copy per sample.
            out = np.empty((len(slots), width), dtype=np.uint16)
            streams = [d.tokens for d in datasets]
            for row, (s, slot) in enumerate(zip(source.tolist(), slots.tolist())):
                start = slot * bench.seq_len
                out[row] = streams[s][start : start + width]
            return out

        rng = np.random.default_rng(1)
        total = samples.sources[0].num_train + samples.sources[1].num_train
        ours_t, base_t = [], []
        # Consecutive global batches from a random point of the run (a later epoch included), as training
        # reads them; the sampler's per-block work (once per BLOCK samples) is in the mean.
        first = int(rng.integers(0, total * 3))
        for k in range(bench.rounds):
            ids = np.arange(first + k * bench.batch, first + (k + 1) * bench.batch)
            source, slots = positions(ids)
            t = time.perf_counter()
            expected = baseline(source, slots)
            base_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            got = samples.read(ids)
            ours_t.append(time.perf_counter() - t)
            assert np.array_equal(got, expected), "the sampler read other bytes than the baseline"
        base, ours = float(np.mean(base_t)), float(np.mean(ours_t))
        gb = bench.batch * width * 2 / 1e9
        print(f"# seq_len {bench.seq_len}, batch {bench.batch}, mean of {bench.rounds} consecutive batches")
        print(f"{'method':<34} {'ms/batch':>9} {'samples/s':>11} {'GB/s':>7} {'vs numpy':>9}")
        print(
            f"{'numpy copy (baseline)':<34} {1000 * base:>9.2f} {bench.batch / base:>11,.0f} {gb / base:>7.2f} "
            f"{1.0:>8.2f}x"
        )
        print(
            f"{'PretrainSamples.read (ours)':<34} {1000 * ours:>9.2f} {bench.batch / ours:>11,.0f} "
            f"{gb / ours:>7.2f} {base / ours:>8.2f}x"
        )
    finally:
        if not bench.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
