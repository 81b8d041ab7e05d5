"""Throughput of a training run: tokens/s, achieved TFLOP/s per device, and MFU against the device's peak.

MFU (model FLOPs utilization, PaLM appendix B) = achieved model FLOP/s / peak FLOP/s, where the model
FLOPs are counting.flops_per_token times the tokens trained: recomputation (activation checkpointing)
does not count, so MFU is comparable between runs with and without it.
"""

from __future__ import annotations

from typing import Optional

import torch

# Dense (no 2:4 sparsity) peak TFLOP/s per GPU from NVIDIA's datasheets. fp32 is the non-tensor-core
# figure: torch runs fp32 matmuls without TF32 unless told to (torch.backends.cuda.matmul.allow_tf32).
# Order matters: the first name found in torch.cuda.get_device_name() wins, so variants come first.
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"bf16": 989.4, "fp32": 66.9}),
    ("H100 PCIe", {"bf16": 756.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.0, "fp32": 60.0}),
    ("H100", {"bf16": 989.4, "fp32": 66.9}),  # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", {"bf16": 312.0, "fp32": 19.5}),
]


def lookup_peak_tflops(device_name: str, precision: str) -> Optional[float]:
    """Peak TFLOP/s of a GPU by name (as torch.cuda.get_device_name gives it); None when not in the table."""
    for key, peaks in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return peaks.get(precision)
    return None


def device_peak_tflops(flag: Optional[float], precision: str) -> Optional[float]:
    """--train.peak-tflops when given (0: unknown), else the table's figure for this GPU; None on a CPU,
    whose peak depends on cores, clocks and vector units that nothing here measures reliably."""
    if flag is not None:
        return flag or None
    if torch.cuda.is_available():
        return lookup_peak_tflops(torch.cuda.get_device_name(), precision)
    return None


def throughput(
    tokens: float, flops: float, seconds: float, world_size: int, peak_tflops: Optional[float]
) -> dict:
    """Scalars for `tokens` and `flops` trained by all ranks together in `seconds` of wall time; mfu only
    when the peak is known."""
    seconds = max(seconds, 1e-9)
    tflops = flops / world_size / seconds / 1e12
    out = {"tokens_per_s": tokens / seconds, "tflops_per_device": tflops}
    if peak_tflops:
        out["mfu"] = tflops / peak_tflops
    return out
