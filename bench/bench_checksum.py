"""What the checkpoint checksums cost: the save and the load of one checkpoint of a paper model with and without
them, as ratios, with every rank's files written and read at once by one process per rank.

    python bench/bench_checksum.py [--preset synthetic-d1024-e64 --ranks 8 --out-dir /local/disk/tmp]

Each rank writes the files of its share of a ZeRO-2 fp32 checkpoint of the model (Adam: 12 bytes per parameter
of optimizer partitions spread over the ranks; 4 bytes per parameter of module and expert weights, the experts
spread over the ranks, the rest on rank 0) with torch.save and an fsync each, as DeepSpeed and our save() do;
then hashes each file right after writing it, as training/checkpoint_manifest.RecordWrites does (from the page
cache). The load reads every file with torch.load(weights_only=True), with and without hashing it first, from
the page cache, and with --drop-caches (root) once more from disk. Run it on a quiet machine: the result is a
ratio of two wall times of memory- and disk-bound work that anything else running disturbs.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro
from machine import describe  # bench/machine.py: this script's folder is on sys.path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Args:
    preset: str = "synthetic-d1024-e64"
    """Model preset whose checkpoint is written."""
    ranks: int = 8
    """Processes writing at once (the data-parallel world of the save)."""
    scale: float = 1.0
    """Fraction of the checkpoint to write (below 1 for a machine without the memory or disk for all of it)."""
    repeats: int = 2
    """Saves (and loads) per variant; the fastest counts."""
    out_dir: Optional[str] = None
    """Where the files go (default: a temporary directory, removed afterwards); put it on the disk to measure."""
    drop_caches: bool = False
    """Also load after dropping the page cache (needs root: writes /proc/sys/vm/drop_caches)."""


def rank_files(preset: str, ranks: int, scale: float) -> list[list[tuple[str, int]]]:
    """[(file name, float32 elements)] per rank."""
    from ds_parrots.config import preset_model
    from ds_parrots.models.counting import _expert, count_params

    cfg = preset_model(preset)
    total = count_params(cfg).total
    experts = cfg.num_experts * cfg.n_layers if cfg.is_moe else 0
    per_expert = _expert(cfg) if cfg.is_moe else 0
    out = []
    for r in range(ranks):
        files = [(f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt", 3 * math.ceil(total / ranks))]
        files += [
            (
                f"layer_{e // cfg.num_experts}_expert_{e % cfg.num_experts}_mp_rank_00_model_states.pt",
                per_expert,
            )
            for e in range(r, experts, ranks)
        ]
        if r == 0:
            files.append(("mp_rank_00_model_states.pt", total - experts * per_expert))
        out.append([(name, max(1, int(n * scale))) for name, n in files])
    return out


def worker(rank: int, files: list, directory: str, repeats: int, drop: bool, barrier, results) -> None:
    import torch

    sys.path.insert(0, str(REPO))
    from ds_parrots.parallel.checkpoint_format import safe_load
    from ds_parrots.training.checkpoint_manifest import digest

    torch.set_num_threads(1)
    tensors = {name: torch.rand(n) for name, n in files}
    paths = [Path(directory) / name for name, _ in files]

    def save(hash_files: bool) -> float:
        barrier.wait()
        start = time.perf_counter()
        for (name, _), path in zip(files, paths):
            with open(path, "wb") as f:
                torch.save({"state": tensors[name]}, f)
                f.flush()
                os.fsync(f.fileno())
            if hash_files:
                digest(path)
        return time.perf_counter() - start

    def load(hash_files: bool, cold: bool) -> float:
        barrier.wait()
        if cold and rank == 0:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
        barrier.wait()
        start = time.perf_counter()
        for path in paths:
            if hash_files:
                digest(path)
            safe_load(path)
        return time.perf_counter() - start

    out = {}
    for _ in range(repeats):  # alternated, so that drift hits both variants alike
        for hashed in (False, True):
            key = f"save{'+hash' if hashed else ''}"
            out[key] = min(out.get(key, math.inf), save(hashed))
        for cold in (False, True) if drop else (False,):
            for hashed in (False, True):
                key = f"load{'+hash' if hashed else ''}{' (cold)' if cold else ''}"
                out[key] = min(out.get(key, math.inf), load(hashed, cold))
    results[rank] = out


def main(a: Args) -> None:
    sys.path.insert(0, str(REPO))
    plan = rank_files(a.preset, a.ranks, a.scale)
    gib = sum(n for files in plan for _, n in files) * 4 / 2**30
    print(
        f"{describe()}\n{a.preset}: {gib:.1f} GiB of checkpoint over {a.ranks} ranks (scale {a.scale})",
        flush=True,
    )
    root = Path(a.out_dir or tempfile.mkdtemp(prefix="bench_checksum_"))
    root.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    barrier, manager = ctx.Barrier(a.ranks), ctx.Manager()
    results = manager.dict()
    procs = [
        ctx.Process(target=worker, args=(r, plan[r], str(root), a.repeats, a.drop_caches, barrier, results))
        for r in range(a.ranks)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        raise SystemExit("a worker failed")
    slowest = {k: max(results[r][k] for r in range(a.ranks)) for k in results[0]}
    print("\n| phase | seconds (slowest rank) | with checksums / without |\n|---|---:|---:|")
    for key, value in slowest.items():
        base = slowest[key.replace("+hash", "")]
        print(f"| {key} | {value:.2f} | {value / base:.3f}x |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if a.out_dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
