"""Tokenize a text corpus once into a Megatron `.bin` / `.idx` token file pair (`ds-parrots prepare`).

Inputs are read in the order given, each document becoming its ids followed by eos; the formats and
the split of the input into contiguous tasks are in data/sources.py. Workers read their own tasks, so
parsing runs in parallel with, and in the same processes as, encoding: `datasets` would first convert the
whole input to Arrow in one process, which measured 16-30% of the encode time at 2 processes.
Each worker, with its own tokenizer, writes a task's tokens to a raw part file; the parent appends the
parts in task order to one IndexedWriter, so the output does not depend on the number of processes.
The writer renames the pair into place only at the end and the parts live in a temporary folder beside the
output that is removed whatever happens: an interrupted prepare leaves nothing that looks finished.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ds_parrots.data.indexed import IndexedWriter, dtype_for_vocab, paths_of
from ds_parrots.data.sources import (
    Source,
    Task,
    check_inputs,
    is_hub_name,
    open_sources,
    plan_tasks,
    read_task,
)
from ds_parrots.data.tokenizer import SentencePieceTokenizer
from ds_parrots.errors import DataError

# Worker state, set once per process by _init_worker (the tokenizer loads once, not per task).
_WORKER: dict = {}


def _init_worker(
    sources: list[Source], tokenizer_path: str, dtype: np.dtype, skip_empty: bool, part_dir: str
) -> None:
    if multiprocessing.parent_process() is not None:
        # The parent handles Ctrl-C (the terminal sends it to every worker too) and stops the pool, whose
        # SIGTERM must end a worker at once, whatever handler the parent had installed before forking.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _WORKER.update(
        sources=sources,
        tokenizer=SentencePieceTokenizer(tokenizer_path),
        dtype=np.dtype(dtype),
        skip_empty=skip_empty,
        part_dir=Path(part_dir),
    )


def _encode_task(numbered: tuple[int, Task]) -> tuple[Path, np.ndarray, int, int]:
    """Encode one task into a part file; returns (part, document sizes, bytes read, documents skipped)."""
    index, task = numbered
    w = _WORKER
    texts, where = read_task(w["sources"][task.source], task)
    keep = [t for t in texts if t and not t.isspace()]
    if len(keep) < len(texts) and not w["skip_empty"]:
        i = next(i for i, t in enumerate(texts) if not t or t.isspace())
        what = "null" if texts[i] is None else "empty or only whitespace"
        raise DataError(
            f"{where(i)}: the text is {what}; remove the document or pass --skip-empty to skip such documents"
        )
    tokens, sizes = w["tokenizer"].encode_documents(keep, w["dtype"], num_threads=1)
    part = w["part_dir"] / f"part-{index:08d}.bin"
    tokens.astype(w["dtype"].newbyteorder("<"), copy=False).tofile(part)  # the .bin is little-endian
    return part, sizes, task.weight, len(texts) - len(keep)


@contextlib.contextmanager
def _encoded(tasks: list[Task], num_proc: int, init_args: tuple) -> Iterator[Iterator]:
    """The results of _encode_task for each task, in task order, from num_proc processes."""
    numbered = list(enumerate(tasks))
    if num_proc == 1 or len(tasks) <= 1:
        _init_worker(*init_args)
        try:
            yield map(_encode_task, numbered)
        finally:
            _WORKER.clear()
        return
    # fork where there is one: workers inherit what `datasets` loaded and the imports instead of redoing them.
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ctx.Pool(min(num_proc, len(tasks)), _init_worker, init_args) as pool:
        yield pool.imap(_encode_task, numbered)


@dataclass(frozen=True)
class PrepareSummary:
    """What a prepare wrote."""

    documents: int
    tokens: int
    skipped: int
    seconds: float
    bin_path: Path
    idx_path: Path

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        skipped = f" ({self.skipped} empty skipped)" if self.skipped else ""
        return (
            f"prepared {self.documents} documents{skipped}, {self.tokens} tokens in {self.seconds:.1f} s "
            f"({self.tokens_per_s:,.0f} tokens/s)\n  {self.bin_path}\n  {self.idx_path}"
        )


def prepare(
    inputs: Sequence[str | Path],
    text_field: str,
    tokenizer_path: str | Path,
    output_prefix: str | Path,
    num_proc: Optional[int] = None,
    skip_empty: bool = False,
    overwrite: bool = False,
    cache_dir: Optional[str | Path] = None,
    verbose: bool = True,
) -> PrepareSummary:
    """Tokenize `inputs` with the sentencepiece model at `tokenizer_path` into `<output_prefix>.bin/.idx`.

    num_proc: worker processes (None: every CPU). skip_empty: skip empty / whitespace-only / null texts
    instead of stopping at the first. overwrite: replace an existing pair (only once the new one is
    complete). cache_dir: where `datasets` keeps its Arrow copy of the inputs it reads; None: a temporary
    folder beside the output, deleted at the end (a Hub dataset then uses the `datasets` cache, to download
    once). verbose: a progress bar on stderr and the summary on stdout.
    """
    import datasets
    from tqdm import tqdm

    start_time = time.perf_counter()
    if not is_hub_name(inputs):
        check_inputs(inputs)  # the cheap checks first: inputs, tokenizer, output; then reading
    tokenizer = SentencePieceTokenizer(tokenizer_path)
    if tokenizer.eos_id < 0:
        raise DataError(
            f"tokenizer '{tokenizer_path}' has no eos piece; documents are separated by eos, so use a "
            "tokenizer that defines one"
        )
    dtype = dtype_for_vocab(tokenizer.vocab_size)
    bin_path, idx_path = paths_of(output_prefix)
    if not overwrite and (bin_path.exists() or idx_path.exists()):
        raise DataError(
            f"output '{idx_path if idx_path.exists() else bin_path}' already exists; choose another "
            "--output or pass --overwrite to replace it"
        )
    num_proc = num_proc or os.cpu_count() or 1
    if num_proc < 1:
        raise DataError(f"--num-proc={num_proc} must be >= 1")
    bin_path.parent.mkdir(parents=True, exist_ok=True)
    bars_were_off = datasets.utils.are_progress_bars_disabled()
    if not verbose:
        datasets.disable_progress_bars()
    skipped = 0
    try:
        with tempfile.TemporaryDirectory(prefix=f".{bin_path.stem}.prepare-", dir=bin_path.parent) as tmp:
            cache = (
                cache_dir if cache_dir is not None or is_hub_name(inputs) else Path(tmp) / "datasets-cache"
            )
            sources = open_sources(inputs, text_field, cache)
            tasks = plan_tasks(sources, num_proc)
            part_dir = Path(tmp) / "parts"
            part_dir.mkdir()
            init_args = (sources, str(tokenizer_path), dtype, skip_empty, str(part_dir))
            # The pool forks before tqdm starts its monitor thread. Progress counts input bytes: the number
            # of documents is known only once they are read.
            with (
                IndexedWriter(output_prefix, dtype) as writer,
                _encoded(tasks, num_proc, init_args) as results,
                tqdm(
                    total=sum(t.weight for t in tasks),
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    file=sys.stderr,
                    disable=not verbose,
                ) as bar,
            ):
                for part, sizes, weight, empty in results:
                    writer.append_raw(part, sizes)
                    part.unlink()
                    skipped += empty
                    bar.update(weight)
                    bar.set_postfix_str(f"{writer.num_documents} docs", refresh=False)
                if writer.num_documents == 0:
                    held = f"only empty documents ({skipped})" if skipped else "no documents"
                    raise DataError(
                        f"nothing to write: the inputs ({', '.join(s.name for s in sources)}) hold "
                        f"{held}; check --input and --text-field"
                    )
                documents, tokens = writer.num_documents, writer.num_tokens
    finally:
        if not verbose and not bars_were_off:
            datasets.enable_progress_bars()
    summary = PrepareSummary(documents, tokens, skipped, time.perf_counter() - start_time, bin_path, idx_path)
    if verbose:
        print(summary)
    return summary
