"""tokens/s, achieved TFLOP/s per device and MFU over each logging window."""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from ds_parrots.training.callbacks.base import Callback
from ds_parrots.training.throughput import throughput


class Throughput(Callback):
    order = 10

    def __init__(self, peak_tflops):
        self.peak = peak_tflops
        self.tokens, self.flops, self.t_last = 0, 0.0, time.perf_counter()

    def on_start(self, trainer) -> None:
        self.t_last = time.perf_counter()

    def post_train_batch(self, trainer, step, out) -> None:
        self.tokens += out.tokens
        self.flops += out.flops

    def on_log(self, trainer, step, out, scalars) -> None:
        elapsed = time.perf_counter() - self.t_last
        totals = torch.tensor([self.tokens, self.flops], dtype=torch.float64)
        dist.all_reduce(totals)  # host counts, gloo-side even on GPUs' CPU group: no device sync
        world = dist.get_world_size()
        scalars.update(throughput(totals[0].item(), totals[1].item(), elapsed, world, self.peak))
        self.tokens, self.flops, self.t_last = 0, 0.0, time.perf_counter()
