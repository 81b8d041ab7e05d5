"""Throughput of `prepare` against raw sentencepiece encoding of the same text with as many processes.

    python bench/bench_prepare.py [--size-mb 48 --num-proc 2 --tokenizer tok.model ...]

Generates English-like jsonl (Zipf-distributed words from a fixed list, documents of random length) in a
temporary folder and trains a tokenizer on a sample of it, unless --tokenizer is given. Then, with the
same number of processes:
  raw (int lists)  a Pool whose workers each encode one contiguous shard of the texts, already in memory,
                   with sentencepiece's usual `encode(texts)`; nothing is written;
  raw (numpy)      the same with `return_type="numpy"`, the call prepare itself uses;
  prepare          our prepare() end to end: reading the jsonl through `datasets` (a fresh cache),
                   encoding, writing the .bin/.idx pair.
Both raw runs include starting the pool and loading the tokenizer in each worker, as prepare does.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

# Common English words; rarer "words" are built from syllables below so the vocabulary has a long tail.
WORDS = (
    "the of and to in is was for that with as on by at from his her are be this which or an had not but "
    "were they have one all their there been has more when who its will would no if out so up said what "
    "about into than them can only other new some could time these two may then do first any my now such "
    "like our over man me even most made after also did many before must through back years where much "
    "your way well down should because each just those people how too little state good very make world "
    "still own see men work long get here between both life being under never day same another know while "
    "last might us great old year off come since against go came right used take three"
).split()
SYLLABLES = (
    "ka ro mi ne ta su le po ri an ex ter pro con ing tion al ous ble ment com de re in un ver"
).split()


@dataclass
class Bench:
    size_mb: float = 48.0
    """Megabytes of synthetic jsonl text to generate."""
    num_proc: int = 2
    """Processes for the raw encode and for prepare alike."""
    vocab_size: int = 8000
    """Vocabulary of the tokenizer trained on the synthetic text (ignored with --tokenizer)."""
    tokenizer: Optional[Path] = None
    """An existing sentencepiece .model to use instead of training one."""
    train_mb: float = 4.0
    """Megabytes of the generated text the tokenizer is trained on."""
    seed: int = 0
    """Seed of the text generator."""


def english_documents(size_mb: float, seed: int) -> list[str]:
    """Documents of Zipf-distributed words (lognormal lengths, sentences of 5-30 words) totalling ~size_mb."""
    rng = np.random.default_rng(seed)
    rare = ["".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 5)))) for _ in range(20000)]
    vocab = np.array(list(WORDS) + list(dict.fromkeys(rare)), dtype=object)
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    docs, size = [], 0
    while size < size_mb * 1e6:
        n = int(np.clip(rng.lognormal(5.5, 1.0), 5, 20000))
        words = vocab[rng.choice(len(vocab), size=n, p=p)]
        cuts = np.cumsum(rng.integers(5, 30, size=n // 5 + 1))
        sentences = [" ".join(words[a:b]) for a, b in zip(np.r_[0, cuts], cuts) if a < n]
        doc = " ".join(s[:1].upper() + s[1:] + "." for s in sentences)
        docs.append(doc)
        size += len(doc) + 12
    return docs


_TEXTS: list[str] = []


def _raw_encode(job: tuple[str, int, int, bool]) -> int:
    import sentencepiece as spm

    path, start, stop, as_numpy = job
    sp = spm.SentencePieceProcessor(model_file=path)
    tokens = 0
    for i in range(start, stop, 1024):
        batch = _TEXTS[i : min(i + 1024, stop)]
        if as_numpy:
            tokens += sum(a.size for a in sp.encode(batch, return_type="numpy", num_threads=1))
        else:
            tokens += sum(len(ids) for ids in sp.encode(batch, out_type=int, num_threads=1))
    return tokens


def raw_encode(texts: list[str], tokenizer: Path, num_proc: int, as_numpy: bool) -> tuple[int, float]:
    """(tokens, seconds) of encoding each contiguous shard of texts in its own worker."""
    global _TEXTS
    _TEXTS = texts  # inherited by the forked workers
    edges = np.linspace(0, len(texts), num_proc + 1).astype(int)
    jobs = [(str(tokenizer), int(a), int(b), as_numpy) for a, b in zip(edges[:-1], edges[1:])]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(num_proc) as pool:
        tokens = sum(pool.map(_raw_encode, jobs, chunksize=1))
    return tokens, time.perf_counter() - start


def main() -> None:
    import datasets  # imported before timing, as sentencepiece is for the raw runs
    import tyro

    from ds_parrots.data.prepare import prepare
    from ds_parrots.data.tokenizer import train_sentencepiece

    bench = tyro.cli(Bench, description=__doc__)
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        texts = english_documents(bench.size_mb, bench.seed)
        data = tmp / "corpus.jsonl"
        with open(data, "w") as f:
            f.writelines(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(texts))
        print(
            f"# {len(texts)} documents, {data.stat().st_size / 1e6:.1f} MB jsonl, generated in "
            f"{time.perf_counter() - t:.1f} s; {bench.num_proc} processes, {os.cpu_count()} CPUs"
        )
        tokenizer = bench.tokenizer
        if tokenizer is None:
            t = time.perf_counter()
            sample, size = tmp / "sample.txt", 0
            with open(sample, "w") as f:
                for d in texts:
                    f.write(d + "\n")
                    size += len(d)
                    if size > bench.train_mb * 1e6:
                        break
            tokenizer = train_sentencepiece([sample], tmp / "tok", bench.vocab_size)
            print(
                f"# tokenizer: {bench.vocab_size} pieces, bpe, trained on {bench.train_mb:g} MB in "
                f"{time.perf_counter() - t:.1f} s"
            )
        else:
            print(f"# tokenizer: {tokenizer}")

        rows = []
        for name, as_numpy in (("raw encode (int lists)", False), ("raw encode (numpy)", True)):
            tokens, seconds = raw_encode(texts, tokenizer, bench.num_proc, as_numpy)
            rows.append((name, tokens + len(texts), seconds))  # + the eos prepare adds per document
        summary = prepare(
            [data], "text", tokenizer, tmp / "out" / "corpus", num_proc=bench.num_proc, verbose=False
        )
        rows.append(("prepare (end to end)", summary.tokens, summary.seconds))
        assert summary.tokens == rows[0][1] == rows[1][1], (
            "prepare and the raw encode disagree on the token count"
        )

        print(f"{'':<24} {'docs':>8} {'tokens':>11} {'seconds':>8} {'tokens/s':>11} {'prepare/this':>13}")
        for name, tokens, seconds in rows:
            print(
                f"{name:<24} {len(texts):>8} {tokens:>11} {seconds:>8.2f} {tokens / seconds:>11,.0f} "
                f"{summary.tokens_per_s / (tokens / seconds):>13.2f}"
            )


if __name__ == "__main__":
    main()
