"""glibc malloc settings for training on the CPU: keep freed memory for the next step.

glibc serves every block over its mmap threshold (at most 32 MB by default) with a fresh mmap and
unmaps it on free, so a tensor that size allocated every step (the [E, ...] weight gradients of an MoE
layer: 200 MB at E = 64, d = 512) is page-faulted and zeroed by the kernel every step: 0.2-0.3 s per
layer forward + backward, the whole gap between the MoE layer and its dense twin at E = 64 that is left
after the grouped kernel (bench/bench_moe_layer.py). Raising the mmap and trim thresholds makes glibc keep
such blocks in its heap and hand them out again, as PyTorch's CUDA caching allocator does on a GPU. The
cost: memory freed at the peak is not returned to the OS until the process exits.

Only the process's own choice is made here: nothing changes where the user set glibc's variables or
preloaded another allocator (jemalloc, tcmalloc, mimalloc), or where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to 1 GiB come from the heap; up to 2 GiB - 1 (mallopt takes an int) of free heap top is kept.
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = (1 << 31) - 1

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def user_choice() -> str | None:
    """Why the allocator is left alone (the user's own setting), or None."""
    for name in _USER_SETTINGS:
        if name in os.environ:
            return f"{name} is set"
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES sets glibc.malloc"
    preload = os.environ.get("LD_PRELOAD", "")
    for lib in _OTHER_ALLOCATORS:
        if lib in preload:
            return f"{lib} is preloaded"
    return None


def keep_freed_memory() -> str:
    """Make glibc keep freed blocks of up to 1 GiB for reuse (process-wide, for the rest of the process).
    Returns what was done, for the log: 'kept', or why nothing was changed."""
    reason = user_choice()
    if reason is not None:
        return f"left as set ({reason})"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "left as is (no glibc mallopt)"
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return "left as is (mallopt refused the thresholds)"
    return "kept"
