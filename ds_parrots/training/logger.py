"""Run logging: TensorBoard scalars and histograms, console lines, a progress bar (rank 0 only)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import torch


class RunLogger:
    def __init__(self, log_dir: Path, enabled: bool, total_steps: int, start_step: int, progress: bool):
        self.enabled = enabled
        self.writer = None
        self.bar = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        self.log_dir = Path(log_dir)
        try:
            self.writer = SummaryWriter(str(log_dir))
        except OSError as e:
            self._tensorboard_failed(e)
        if progress:
            # In a log file (cluster jobs) a bar redrawn 10 times a second is noise: redraw every 30 s.
            self.bar = tqdm(
                total=total_steps,
                initial=start_step,
                desc="train",
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
                mininterval=0.1 if sys.stderr.isatty() else 30.0,
            )
        self._t = time.perf_counter()

    def info(self, msg: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def _tensorboard_failed(self, e: OSError) -> None:
        # Losing the curves must not cost the training run: say so once, go on with the console lines. A full
        # disk will stop the run at its next checkpoint, with an error that says which checkpoint is intact.
        self.writer = None
        self.info(
            f"warning: TensorBoard logging stopped: could not write to {self.log_dir}: {e.strerror or e}; "
            "training goes on with console logging only"
        )

    def step(self, step: int, scalars: dict, load: Optional[dict] = None) -> None:
        """Scalars of optimizer step `step` (1-based count of finished steps)."""
        if not self.enabled:
            return
        if self.writer is not None:
            try:
                self._write_step(step, scalars, load)
            except OSError as e:
                self._tensorboard_failed(e)
        if self.bar is not None:
            self.bar.set_postfix(console_fields(scalars))

    def _write_step(self, step: int, scalars: dict, load: Optional[dict]) -> None:
        for k, v in scalars.items():
            self.writer.add_scalar(f"train/{k}", v, step)
        for layer, frac in (load or {}).items():
            frac = torch.as_tensor(frac, dtype=torch.float64)
            self.writer.add_scalar(f"experts/cv_layer{layer:02d}", coefficient_of_variation(frac), step)
            # Histogram of tokens per expert: bucket e holds expert e's share.
            self.writer.add_histogram_raw(
                f"experts/load_layer{layer:02d}",
                min=0,
                max=len(frac),
                num=len(frac),
                sum=float((torch.arange(len(frac)) * frac).sum()),
                sum_squares=float((torch.arange(len(frac)) ** 2 * frac).sum()),
                bucket_limits=list(range(1, len(frac) + 1)),
                bucket_counts=frac.tolist(),
                global_step=step,
            )

    def start_at(self, step: int) -> None:
        """The run resumes after `step` finished steps: the bar starts there."""
        if self.bar is not None:
            self.bar.n = step
            self.bar.refresh()

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def scalars(self, prefix: str, values: dict, step: int) -> None:
        if self.writer is None:
            return
        try:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.writer.add_scalar(f"{prefix}/{k}", v, step)
        except OSError as e:
            self._tensorboard_failed(e)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as e:
                self._tensorboard_failed(e)


def console_fields(scalars: dict) -> dict:
    """The few scalars worth a place on the progress line, formatted."""
    out = {k: f"{scalars[k]:.4g}" for k in ("loss", "aux_loss", "lr") if k in scalars}
    if "tokens_per_s" in scalars:
        out["tok/s"] = f"{scalars['tokens_per_s']:,.0f}"
    if "tflops_per_device" in scalars:
        out["TFLOP/s"] = f"{scalars['tflops_per_device']:.3g}"
    if "mfu" in scalars:
        out["mfu"] = f"{100 * scalars['mfu']:.1f}%"
    return out


def coefficient_of_variation(frac: torch.Tensor) -> float:
    """std / mean of the per-expert load: 0 for perfect balance."""
    frac = frac.double()
    return float(frac.std(unbiased=False) / frac.mean()) if frac.mean() > 0 else 0.0
