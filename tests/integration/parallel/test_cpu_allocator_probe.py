"""--train.cpu-allocator keep: glibc hands a freed large block out again instead of unmapping it and
page-faulting a fresh one (counted in minor page faults, not timed), and the user's own malloc settings win."""

import subprocess
import sys

import pytest

from helpers import REPO, cpu_env

pytestmark = [pytest.mark.slow]

# 256 MB + 100 MB per round, as an MoE step's [E, ...] gradients: both over glibc's 32 MB mmap ceiling.
PROBE = """
import resource, sys, torch
from ds_parrots.parallel.cpu_allocator import keep_freed_memory
print(keep_freed_memory() if sys.argv[1] == "keep" else "system")
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.empty(256 << 20, dtype=torch.uint8).fill_(1)
    b = torch.empty(100 << 20, dtype=torch.uint8).fill_(1)
    del a, b
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""
PAGES = (356 << 20) // 4096


def probe(mode: str, **env) -> tuple[str, list[int]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=REPO,
        env={**cpu_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    return out[0], [int(n) for n in out[1].split()]


def test_keep_reuses_freed_blocks_where_glibc_defaults_fault_them_in_every_round():
    status, kept = probe("keep")
    assert status == "kept"
    _, system = probe("system")
    # Defaults: every round maps and zeroes the blocks again.
    assert min(system) > 0.9 * PAGES, system
    # Kept: once glibc's heap has grown to the working set, rounds reuse it without a fault.
    assert min(kept[1:]) < 0.02 * PAGES, kept


def test_left_alone_means_the_users_threshold_still_rules():
    # MALLOC_MMAP_THRESHOLD_ small (bench_memory.py's setting): blocks keep going back to the OS.
    status, faults = probe("keep", MALLOC_MMAP_THRESHOLD_="131072")
    assert status.startswith("left as set")
    assert min(faults) > 0.9 * PAGES, faults
