"""Batches of a synthetic task, addressed rather than iterated.

Sample i of the run is example perm_{epoch}(i mod N) with epoch = i // N and perm a seeded
permutation: a pure function of (i, seed). Which samples a rank reads at each step is the shared
layout of data/step_layout.py, so each rank builds only its own samples and resuming at step s needs
nothing but s.
"""

from __future__ import annotations

import numpy as np
import torch

from ds_parrots.data.step_layout import StepLayout
from ds_parrots.tasks.base import Example, SyntheticTask

IGNORE = -100


def collate(examples: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, targets) right-padded to the longest example; targets are -100 on the prompt and
    padding so that only answer tokens count in the loss."""
    seqs = [e.prompt + e.answer for e in examples]
    length = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    targets = torch.full((len(seqs), length), IGNORE, dtype=torch.long)
    for row, (e, s) in enumerate(zip(examples, seqs)):
        n = len(s) - 1
        inputs[row, :n] = torch.tensor(s[:-1])
        # Position t predicts token t + 1; answer tokens start at index len(prompt).
        start = len(e.prompt) - 1
        targets[row, start:n] = torch.tensor(s[start + 1 :])
    return inputs, targets


class TaskBatches(StepLayout):
    def __init__(
        self, task: SyntheticTask, seed: int, global_batch: int, micro_batch: int, world_size: int, rank: int
    ):
        super().__init__(global_batch, micro_batch, world_size, rank)
        self.task, self.seed = task, seed
        self.size = task.train_size()
        self._perm_epoch, self._perm = -1, None

    def example_index(self, i: int) -> int:
        epoch, pos = divmod(i, self.size)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            self._perm_epoch = epoch
        return int(self._perm[pos])

    def micro_batch_at(self, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        examples = [self.task.train_example(self.example_index(i)) for i in self.sample_ids(step, micro)]
        return collate(examples, self.task.tokenizer.pad_id)

    def step_batches(self, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [self.micro_batch_at(step, m) for m in range(self.accumulation)]

    def epochs_at(self, step: int) -> float:
        """How many passes over the training set the run has made by the end of `step`."""
        return (step + 1) * self.global_batch / self.size


class _StepDataset(torch.utils.data.Dataset):
    def __init__(self, batches: TaskBatches, start: int, stop: int):
        self.batches, self.start, self.stop = batches, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, k: int):
        return self.batches.step_batches(self.start + k)


def iterate_steps(batches: TaskBatches, start: int, stop: int, num_workers: int):
    """Yields the micro-batches of steps start..stop-1, built in `num_workers` background processes."""
    if num_workers == 0:
        for step in range(start, stop):
            yield batches.step_batches(step)
        return
    loader = torch.utils.data.DataLoader(
        _StepDataset(batches, start, stop),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        prefetch_factor=4,
        persistent_workers=False,
    )
    yield from loader
