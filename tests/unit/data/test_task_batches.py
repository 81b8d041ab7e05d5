import torch

from ds_parrots.data.task_batches import IGNORE, TaskBatches, collate
from ds_parrots.tasks import build_task
from ds_parrots.tasks.base import Example
from ds_parrots.tasks.phonebook import PhonebookConfig


def test_collate_masks_prompt_and_padding():
    a = Example(prompt=[1, 10, 11], answer=[20, 21, 2])
    b = Example(prompt=[1, 12], answer=[22, 2])
    inputs, targets = collate([a, b], pad_id=0)
    assert inputs.tolist() == [[1, 10, 11, 20, 21], [1, 12, 22, 0, 0]]
    # Only answer tokens are targets: a's answer starts after position 2, b's after position 1.
    assert targets.tolist() == [[IGNORE, IGNORE, 20, 21, 2], [IGNORE, 22, 2, IGNORE, IGNORE]]


def _batches(rank, world=2, seed=0, size=40):
    task = build_task("phonebook", PhonebookConfig(book_size=size, num_queries=4))
    return task, TaskBatches(task, seed=seed, global_batch=8, micro_batch=2, world_size=world, rank=rank)


def test_rank_shards_are_disjoint_and_cover_the_global_batch():
    _, r0 = _batches(0)
    _, r1 = _batches(1)
    assert r0.accumulation == 2
    for step in range(3):
        ids = [i for m in range(2) for b in (r0, r1) for i in b.sample_ids(step, m)]
        assert sorted(ids) == list(range(step * 8, step * 8 + 8))


def test_each_epoch_visits_every_example_once_in_a_seeded_order():
    _, b = _batches(0, world=1)
    epoch0 = [b.example_index(i) for i in range(40)]
    epoch1 = [b.example_index(i) for i in range(40, 80)]
    assert sorted(epoch0) == list(range(40)) and sorted(epoch1) == list(range(40))
    assert epoch0 != epoch1 and epoch0 != list(range(40))
    _, again = _batches(0, world=1)
    assert [again.example_index(i) for i in range(40)] == epoch0
    _, other = _batches(0, world=1, seed=1)
    assert [other.example_index(i) for i in range(40)] != epoch0


def test_micro_batch_is_a_pure_function_of_step_and_rank():
    _, b = _batches(1)
    x1, y1 = b.micro_batch_at(5, 1)
    _, fresh = _batches(1)
    fresh.micro_batch_at(0, 0)  # a different history does not change what step 5 holds
    x2, y2 = fresh.micro_batch_at(5, 1)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
