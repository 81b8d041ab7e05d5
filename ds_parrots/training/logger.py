"""Run logging: TensorBoard scalars and histograms, console lines, a progress bar (rank 0 only).

A terminal gets the progress bar (unless --train.no-progress). Anything else (a cluster job's .out file, a pipe)
gets no bar: its carriage-return redraws are noise there. Instead, and whenever the bar is off, one plain line
every --train.log-every steps:

    step 120/1000 | loss 2.3456 | aux 1.012 | z 0.1234 | lr 1.20e-03 | grad 0.851 | 12,345 tok/s | mfu 41.2%
        | eta 0:12:34                                    (one line)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import torch


class RunLogger:
    def __init__(
        self,
        log_dir: Path,
        enabled: bool,
        total_steps: int,
        start_step: int,
        progress: bool,
        terminal: Optional[bool] = None,
    ):
        """`terminal`: whether stderr is a terminal (None: ask it)."""
        self.enabled = enabled
        self.writer = None
        self.bar = None
        self.total_steps = total_steps
        self._clock = (time.perf_counter(), start_step)  # for the ETA: when and at which step timing began
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        self.log_dir = Path(log_dir)
        try:
            self.writer = SummaryWriter(str(log_dir))
        except OSError as e:
            self._tensorboard_failed(e)
        if progress and (sys.stderr.isatty() if terminal is None else terminal):
            self.bar = tqdm(
                total=total_steps,
                initial=start_step,
                desc="train",
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
                mininterval=0.1,
            )

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
        else:
            self.info(self.step_line(step, scalars))

    def step_line(self, step: int, scalars: dict) -> str:
        """The plain progress line of a log step (see the module docstring)."""
        parts = [f"step {step}/{self.total_steps}"]
        for key, label, fmt in (
            ("loss", "loss", ".4f"),
            ("aux_loss", "aux", ".4g"),
            ("z_loss", "z", ".4g"),
            ("lr", "lr", ".2e"),
            ("grad_norm", "grad", ".3g"),
        ):
            if key in scalars:
                parts.append(f"{label} {scalars[key]:{fmt}}")
        if "tokens_per_s" in scalars:
            parts.append(f"{scalars['tokens_per_s']:,.0f} tok/s")
        if "mfu" in scalars:
            parts.append(f"mfu {100 * scalars['mfu']:.1f}%")
        started, first = self._clock
        done = step - first
        if done > 0 and step < self.total_steps:
            left = (time.perf_counter() - started) / done * (self.total_steps - step)
            parts.append(f"eta {_hms(left)}")
        return " | ".join(parts)

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
        """The run resumes after `step` finished steps: the bar and the ETA start there."""
        self._clock = (time.perf_counter(), step)
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


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
