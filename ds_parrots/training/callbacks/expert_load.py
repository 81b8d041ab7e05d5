"""Expert load of the logged step, averaged over ranks: the coefficient of variation as a scalar and the
per-layer loads for TensorBoard's histograms."""

from __future__ import annotations

import torch
import torch.distributed as dist

from ds_parrots.training.callbacks.base import Callback
from ds_parrots.training.logger import coefficient_of_variation


class ExpertLoad(Callback):
    order = 20

    def __init__(self):
        self.load = {}
        """Layer -> [E] share of assignments, of the last logged step (read by the logging callback)."""

    def on_log(self, trainer, step, out, scalars) -> None:
        if not out.load:
            self.load = {}
            return
        layers = sorted(out.load)
        stacked = torch.stack([out.load[k] for k in layers]).double()
        dist.all_reduce(stacked)
        stacked = (stacked / dist.get_world_size()).cpu()
        self.load = {k: stacked[i] for i, k in enumerate(layers)}
        scalars["expert_load_cv"] = sum(coefficient_of_variation(v) for v in self.load.values()) / len(
            self.load
        )
