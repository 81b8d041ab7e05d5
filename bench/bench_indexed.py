"""Cost of opening a Megatron-format token file pair, against a bare np.memmap of the same files.

    python bench/bench_indexed.py [--billions 1 8 63 --tokens-per-doc 1000 ...]

For each corpus size it simulates the pair without tokenizing anything: the .idx is written with numpy
(random document lengths, chunk by chunk, so the generator's RAM stays flat) and the .bin is a sparse
file of the right length, so a 63B-token corpus costs only its ~1.3 GB index on disk. Each open runs in
a fresh subprocess, which reports its open time and peak RSS (ru_maxrss); the baseline, two bare
np.memmap calls on the same files, runs the same way in the same run. "warm" opens find the index in the
page cache (it was just written); "cold" ones first evict it, so verify=True reads it from disk.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


@dataclass
class Bench:
    billions: list[float] = field(default_factory=lambda: [1, 8, 63])
    """Corpus sizes to simulate, in billions of tokens."""
    tokens_per_doc: int = 1000
    """Mean document length; lengths are uniform in [1, 2 * tokens_per_doc - 1]."""
    dtype: str = "uint16"
    """Token dtype of the simulated corpus (uint16 or int32)."""
    repeats: int = 3
    """Fresh-process opens per size and method; the median time and the largest RSS are reported."""
    tmp_root: str = "/tmp"
    """Directory under which a temporary folder holds the simulated files; it is deleted at the end."""
    seed: int = 0
    """Seed of the document lengths."""
    cold: bool = True
    """Also open with the .idx evicted from the page cache first (posix_fadvise DONTNEED on that file only),
    as on the first open after a reboot; the warm figures are for an index read recently."""


# Runs in the measuring subprocess. The package is imported by every method, so the figures compare
# the open alone; the opened objects stay alive until memory is read. On Linux an exec'd child starts
# with its parent's ru_maxrss, so the parent keeps itself small (the simulation runs in its own process)
# and the probe also reports VmHWM, the peak RSS of its own address space.
PROBE = """
import json, os, resource, sys, time
import numpy as np
from ds_parrots.data.indexed import IndexedDataset
prefix, method, dtype, cold = sys.argv[1:5]
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024
if cold == "1":
    # Evict this index from the page cache (clean pages of this file only) so the open reads the disk.
    fd = os.open(prefix + ".idx", os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
rss = status("VmRSS")
t = time.perf_counter()
if method == "memmap":
    opened = (np.memmap(prefix + ".idx", dtype=np.uint8, mode="r"), np.memmap(prefix + ".bin", dtype=dtype, mode="r"))
else:
    opened = IndexedDataset(prefix, verify=method == "verify")
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "hwm": status("VmHWM"), "growth": status("VmRSS") - rss}))
"""
METHODS = {
    "memmap": "np.memmap (baseline)",
    "no-verify": "IndexedDataset(verify=False)",
    "verify": "IndexedDataset(verify=True)",
}
CHUNK = 1 << 22  # documents generated at a time


def chunk_lengths(bench: Bench, chunk: int, count: int) -> np.ndarray:
    # One generator per chunk, so the pointer pass can regenerate the lengths instead of keeping them.
    rng = np.random.default_rng([bench.seed, chunk])
    return rng.integers(1, 2 * bench.tokens_per_doc, size=count, dtype=np.int32)


def simulate(bench: Bench, prefix: str, tokens: float) -> tuple[int, int]:
    """Write <prefix>.idx in Megatron's layout and a sparse <prefix>.bin; return (documents, tokens)."""
    from ds_parrots.data.indexed import CODE_OF, HEADER, MAGIC, VERSION

    dtype = np.dtype(bench.dtype)
    n = int(tokens // bench.tokens_per_doc)
    chunks = [(c, min(CHUNK, n - c * CHUNK)) for c in range((n + CHUNK - 1) // CHUNK)]
    with open(prefix + ".idx", "wb") as f:
        f.write(HEADER.pack(MAGIC, VERSION, CODE_OF[dtype], n, n + 1))
        for c, count in chunks:
            f.write(chunk_lengths(bench, c, count).tobytes())
        offset = 0
        for c, count in chunks:
            ends = np.cumsum(chunk_lengths(bench, c, count), dtype=np.int64) * dtype.itemsize + offset
            f.write(np.concatenate([[offset], ends[:-1]]).astype(np.int64).tobytes())
            offset = int(ends[-1])
        for start in range(0, n + 1, CHUNK):
            f.write(np.arange(start, min(start + CHUNK, n + 1), dtype=np.int64).tobytes())
    with open(prefix + ".bin", "wb") as f:
        f.truncate(offset)
    return n, offset // dtype.itemsize


def probe(prefix: str, method: str, dtype: str, cold: bool) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, prefix, method, dtype, str(int(cold))],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": root},
    )
    return json.loads(out.stdout)


def simulate_apart(bench: Bench, prefix: str, tokens: float) -> tuple[int, int]:
    # A spawned process, so the generator's arrays never raise this process's RSS (see PROBE).
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(simulate, (bench, prefix, tokens))


def main() -> None:
    import tyro

    bench = tyro.cli(Bench, description=__doc__)
    largest = max(bench.billions) * 1e9 / bench.tokens_per_doc
    need = int(largest * (4 + 8 + 8)) + (1 << 28)
    free = shutil.disk_usage(bench.tmp_root).free
    if free < need:
        sys.exit(
            f"--tmp-root {bench.tmp_root!r} has {free / 2**30:.1f} GiB free but the largest simulated index needs "
            f"{need / 2**30:.1f} GiB; free space there, pick another --tmp-root or drop the largest --billions"
        )
    caches = ["warm", "cold"] if bench.cold else ["warm"]
    print(
        f"# numpy {np.__version__}, {os.cpu_count()} CPUs, {bench.dtype} tokens, ~{bench.tokens_per_doc} "
        f"tokens/document, median time of {bench.repeats} fresh-process opens, largest memory of them"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_indexed_", dir=bench.tmp_root) as tmp:
        for billions in bench.billions:
            prefix = os.path.join(tmp, f"c{billions:g}b")
            t = time.perf_counter()
            docs, tokens = simulate_apart(bench, prefix, billions * 1e9)
            made = time.perf_counter() - t
            blocks = os.stat(prefix + ".bin").st_blocks * 512
            if blocks > (1 << 20):
                sys.exit(
                    f"{bench.tmp_root!r} does not keep sparse files ({prefix}.bin uses {blocks} bytes); "
                    "pick a --tmp-root on a filesystem that does (ext4, xfs, tmpfs)"
                )
            idx_mib = os.path.getsize(prefix + ".idx") / 2**20
            print(
                f"# simulated {tokens / 1e9:.2f}B tokens, {docs:,} documents, .idx {idx_mib:,.0f} MiB "
                f"in {made:.1f} s"
            )
            for cache in caches:
                for method in METHODS:
                    runs = [probe(prefix, method, bench.dtype, cache == "cold") for _ in range(bench.repeats)]
                    rows.append(
                        dict(
                            billions=billions,
                            docs=docs,
                            cache=cache,
                            method=method,
                            seconds=statistics.median(r["seconds"] for r in runs),
                            **{k: max(r[k] for r in runs) for k in ("maxrss", "hwm", "growth")},
                        )
                    )
            os.remove(prefix + ".idx")
            os.remove(prefix + ".bin")

    seconds = {(r["billions"], r["cache"], r["method"]): r["seconds"] for r in rows}
    print(
        f"{'tokens':>7} {'cache':<5} {'open with':<29} {'seconds':>9} {'time/memmap':>12} {'ru_maxrss':>10} "
        f"{'VmHWM':>7} {'RSS growth':>11}   (memory in MiB)"
    )
    for r in rows:
        ratio = r["seconds"] / seconds[(r["billions"], r["cache"], "memmap")]
        print(
            f"{r['billions']:>6g}B {r['cache']:<5} {METHODS[r['method']]:<29} {r['seconds']:>9.4f} {ratio:>11.1f}x "
            f"{r['maxrss']:>10.0f} {r['hwm']:>7.0f} {r['growth']:>11.1f}"
        )
    small, large = min(bench.billions), max(bench.billions)
    if large > small:
        print(f"# open time scaling {small:g}B -> {large:g}B ({large / small:g}x the tokens and documents):")
        for cache in caches:
            for method in METHODS:
                grow = seconds[(large, cache, method)] / seconds[(small, cache, method)]
                print(f"#   {cache:<5} {METHODS[method]:<29} x{grow:.1f}")


if __name__ == "__main__":
    main()
