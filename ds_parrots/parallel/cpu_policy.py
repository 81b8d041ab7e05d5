"""What training on DeepSpeed's CPU accelerator changes, in one place. Each item is a measured choice for CPU
runs only (bench/RESULTS.md); on a GPU none of them applies.

- glibc keeps freed blocks for reuse (--train.cpu-allocator keep, parallel/cpu_allocator.py).

AutoEP's experts run torch._grouped_mm on the CPU as on a GPU (it is no slower there than a per-expert kernel:
models/grouped_experts.py), and its token permutation is a plain sort where DeepSpeed has no kernel for it
(parallel/autoep_tokens.py): neither is a CPU-only choice.
"""

from __future__ import annotations

from typing import Optional

from ds_parrots.config import TrainConfig
from ds_parrots.parallel.cpu_allocator import keep_freed_memory


def on_cpu() -> bool:
    from deepspeed.accelerator import get_accelerator

    return get_accelerator().device_name() == "cpu"


def before_initialize(train: TrainConfig) -> Optional[str]:
    """Adjust the process for a CPU run; returns what the allocator choice did (for the log), None when not
    applied."""
    return keep_freed_memory() if train.cpu_allocator == "keep" else None
