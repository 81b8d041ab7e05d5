import json
import os
import pickle

import numpy as np
import pytest

from ds_parrots.tasks.cache import cached_task, token_dtype
from ds_parrots.tasks.phonebook import PhonebookConfig, PhonebookTask
from ds_parrots.tasks.shortest_path import ShortestPathConfig, ShortestPathTask


def phonebook(seed=0):
    return PhonebookTask(
        PhonebookConfig(book_size=300, first_names=30, last_names=30, num_queries=20, seed=seed)
    )


def same_examples(a, b):
    assert a.train_size() == b.train_size()
    for i in range(a.train_size()):
        ea, eb = a.train_example(i), b.train_example(i)
        assert (ea.prompt, ea.answer) == (eb.prompt, eb.answer), i


class Exploding:
    """A task whose examples must never be generated again (the cache must serve them)."""

    def __init__(self, task):
        self.__dict__.update(task.__dict__)
        self._task = task
        self.name = task.name

    def __getattr__(self, name):
        return getattr(self._task, name)

    def train_example(self, i):
        raise AssertionError("the cache was rebuilt")


@pytest.mark.parametrize(
    "make", [phonebook, lambda: ShortestPathTask(ShortestPathConfig(num_train=300, num_test=20))]
)
def test_cached_examples_equal_generated_ones(tmp_path, make):
    task = make()
    cached = cached_task(task, tmp_path, progress=False)
    same_examples(cached, task)
    assert (cached.name, cached.tokenizer, cached.max_seq_len, cached.max_answer_len) == (
        task.name,
        task.tokenizer,
        task.max_seq_len,
        task.max_answer_len,
    )
    ev = cached.eval_examples()
    assert [e.prompt for e in ev] == [e.prompt for e in task.eval_examples()]
    assert cached.score(ev[0], ev[0].answer) == task.score(ev[0], ev[0].answer)
    tokens = np.load(next(tmp_path.glob("*/tokens.npy")), mmap_mode="r")
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint8


def test_second_open_reads_the_cache(tmp_path):
    task = phonebook()
    cached_task(task, tmp_path, progress=False)
    same_examples(cached_task(Exploding(task), tmp_path, progress=False), task)


def test_changed_config_builds_its_own_cache(tmp_path):
    cached_task(phonebook(seed=0), tmp_path, progress=False)
    other = phonebook(seed=1)
    same_examples(cached_task(other, tmp_path, progress=False), other)
    assert len(list(tmp_path.iterdir())) == 2


def test_missing_metadata_means_rebuild(tmp_path):
    task = phonebook()
    cached = cached_task(task, tmp_path, progress=False)
    tokens_file = cached.directory / "tokens.npy"
    np.save(tokens_file, np.zeros(len(np.load(tokens_file)), dtype=np.uint8))  # garbage of the right size
    (cached.directory / "meta.json").unlink()  # as if the build had stopped before its last step
    same_examples(cached_task(task, tmp_path, progress=False), task)


def test_files_that_disagree_with_the_metadata_are_rebuilt(tmp_path):
    task = phonebook()
    cached = cached_task(task, tmp_path, progress=False)
    tokens_file = cached.directory / "tokens.npy"
    np.save(tokens_file, np.load(tokens_file)[:-5])  # truncated behind the metadata's back
    same_examples(cached_task(task, tmp_path, progress=False), task)


def test_directory_with_only_temp_files_is_rebuilt(tmp_path):
    task = phonebook()
    directory = cached_task(task, tmp_path, progress=False).directory
    for f in directory.iterdir():  # an interrupted build: temporary files of a dead builder, nothing final
        f.rename(directory / f".{f.name}.{os.uname().nodename.replace('.', '_')}.999999999.tmp")
    rebuilt = cached_task(task, tmp_path, progress=False)
    same_examples(rebuilt, task)
    assert sorted(f.name for f in directory.iterdir()) == [
        "meta.json",
        "offsets.npy",
        "prompt_lens.npy",
        "tokens.npy",
    ]


def test_failed_build_leaves_nothing_that_looks_complete(tmp_path):
    task = phonebook()

    class Failing(Exploding):
        def train_example(self, i):
            if i == 150:
                raise RuntimeError("interrupted")
            return self._task.train_example(i)

    with pytest.raises(RuntimeError, match="interrupted"):
        cached_task(Failing(task), tmp_path, progress=False)
    (directory,) = tmp_path.iterdir()
    assert list(directory.iterdir()) == []  # no meta.json, and temporary files cleaned up
    same_examples(cached_task(task, tmp_path, progress=False), task)


def test_metadata_records_key_and_sizes(tmp_path):
    task = phonebook()
    cached = cached_task(task, tmp_path, progress=False)
    meta = json.loads((cached.directory / "meta.json").read_text())
    assert meta["num_examples"] == 300 and meta["config"]["book_size"] == 300
    assert cached.directory.name == f"phonebook-{meta['key'][:16]}"
    assert meta["num_tokens"] == sum(
        len(task.train_example(i).prompt) + len(task.train_example(i).answer) for i in range(300)
    )


def test_pickles_without_the_token_arrays(tmp_path):
    task = phonebook()
    cached = cached_task(task, tmp_path, progress=False)
    cached.train_example(0)  # opens the memory maps
    blob = pickle.dumps(cached)
    assert len(blob) < len(pickle.dumps(task)) + 2_000  # the tokens alone are 8 kB
    same_examples(pickle.loads(blob), task)


def test_token_dtype_fits_the_vocabulary():
    assert token_dtype(256) == np.uint8
    assert token_dtype(257) == np.uint16
    assert token_dtype(65537) == np.uint32
