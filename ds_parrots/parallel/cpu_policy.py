"""What training on DeepSpeed's CPU accelerator changes, in one place. Each item is a measured choice for CPU
runs only (bench/RESULTS.md); on a GPU none of them applies.

- glibc keeps freed blocks for reuse (--train.cpu-allocator keep, parallel/cpu_allocator.py);
- AutoEP runs its per-expert loop (use_grouped_mm off), whose experts are then swapped for our grouped SwiGLU
  kernel (moe_backends.use_grouped_swiglu).
"""

from __future__ import annotations

from typing import Optional

from ds_parrots.config import ModelConfig, MoEConfig, TrainConfig
from ds_parrots.parallel.cpu_allocator import keep_freed_memory


def on_cpu() -> bool:
    from deepspeed.accelerator import get_accelerator

    return get_accelerator().device_name() == "cpu"


def before_initialize(ds_config: dict, train: TrainConfig) -> Optional[str]:
    """Adjust the DeepSpeed config and the process for a CPU run; returns what the allocator choice did (for
    the log), None when not applied."""
    if "expert_parallel" in ds_config:
        # torch._grouped_mm runs on the CPU in torch 2.13, but its backward rejected stride-0 gradients and it
        # was slower than our kernel at E = 8 (bench/RESULTS.md).
        ds_config["expert_parallel"].setdefault("use_grouped_mm", False)
    return keep_freed_memory() if train.cpu_allocator == "keep" else None


def after_initialize(module, model_cfg: ModelConfig, moe: MoEConfig) -> None:
    from ds_parrots.parallel.moe_backends import use_grouped_swiglu

    if model_cfg.is_moe and moe.backend == "autoep" and moe.autoep_experts == "grouped":
        use_grouped_swiglu(module)
