"""--model.max-seq-len is honoured when given and long enough, refused when too short, and otherwise sized to
what the run trains on."""

import pytest

from ds_parrots.cli.train import parse
from ds_parrots.errors import ConfigError
from ds_parrots.sweep.plan import sized_model


def test_pretrain_model_is_sized_to_the_data_by_default():
    run = parse(["pretrain", "--preset", "tiny-dense", "--data.seq-len", "128"])
    assert run.max_seq_len_given is False
    assert sized_model("pretrain", run).max_seq_len == 128


def test_a_longer_max_seq_len_is_kept():
    run = parse(["pretrain", "--preset", "tiny-dense", "--data.seq-len", "128", "--model.max-seq-len", "512"])
    assert sized_model("pretrain", run).max_seq_len == 512


def test_a_shorter_max_seq_len_is_refused_in_one_line():
    run = parse(["pretrain", "--preset", "tiny-dense", "--data.seq-len", "128", "--model.max-seq-len=64"])
    with pytest.raises(ConfigError, match=r"--model.max-seq-len=64 is shorter than --data.seq-len=128"):
        sized_model("pretrain", run)


def test_synthetic_tasks_keep_a_longer_window_and_refuse_a_shorter_one():
    run = parse(["phonebook", "--preset", "tiny-moe", "--task.book-size", "10"])
    needed = sized_model("phonebook", run).max_seq_len
    longer = parse(
        [
            "phonebook",
            "--preset",
            "tiny-moe",
            "--task.book-size",
            "10",
            "--model.max-seq-len",
            str(needed + 40),
        ]
    )
    assert sized_model("phonebook", longer).max_seq_len == needed + 40
    shorter = parse(
        [
            "phonebook",
            "--preset",
            "tiny-moe",
            "--task.book-size",
            "10",
            "--model.max-seq-len",
            str(needed - 1),
        ]
    )
    with pytest.raises(ConfigError, match="shorter than the task's longest example"):
        sized_model("phonebook", shorter)
