"""The machine a benchmark ran on, for the first line of its output (bench/RESULTS.md quotes it)."""

from __future__ import annotations

import os
import subprocess


def describe() -> str:
    """CPU model (lscpu), core count and the load average at the time of the call."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    name = next(
        (l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), "unknown CPU"
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{name}, {os.cpu_count()} CPUs, load average {load}"
